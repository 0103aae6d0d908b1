"""Where a run's checkpoint goes, made safe before training starts and after it ends.

Before the first batch, :func:`prepare_output` makes sure the checkpoint can be written
(a probe file is created and removed beside it: permission denied, a parent that is a
file, a name too long or a read-only file system show up now, not after hours of
training), takes an advisory lock so that a second run on the same ``--out`` is refused
instead of silently overwriting the first, and removes temporaries that a killed save
left behind. After training, :func:`save_with_fallback` writes the checkpoint and, if the
target fails after all (disk full, ``ulimit -f``), writes it to the system's temporary
directory and says so: trained weights are never lost silently.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ffcore.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, no check
    fcntl = None  # type: ignore[assignment]

#: A temporary older than this (seconds) belongs to no save in progress.
STALE_AFTER = 60.0
#: Suffixes of the temporaries FFLib writes beside a checkpoint (see ``atomic_write``).
TEMP_SUFFIXES = (".tmp", ".probe")


def temp_prefix(target: Path) -> str:
    """The name every temporary of ``target`` starts with: ``.NAME.PID.``."""
    return f".{target.name}.{os.getpid()}."


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def check_writable(target: Path) -> None:
    """Raise :class:`CheckpointError` unless a checkpoint can be written to ``target``.

    Creates the missing parent directories (as the save would), then a probe file named
    like the save's temporary, and removes it.
    """
    try:
        if target.is_dir():
            raise CheckpointError(f"cannot write the checkpoint to {target}: it is a directory")
        for ancestor in target.parents:
            if ancestor.exists():
                if not ancestor.is_dir():
                    raise CheckpointError(
                        f"cannot write the checkpoint to {target}: {ancestor} is not a directory"
                    )
                break
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(
            prefix=temp_prefix(target), suffix=".probe", dir=target.parent
        )
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write the checkpoint to {target}: {_reason(exc)}; choose another --out"
        ) from None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def stale_temporaries(target: Path, *, now: float | None = None) -> list[Path]:
    """Temporaries of ``target`` (``.NAME.[PID.]XXXXXXXX.tmp``) that no save is writing:
    their writer's process is gone, or they have not changed for :data:`STALE_AFTER`
    seconds."""
    now = time.time() if now is None else now
    suffixes = "|".join(re.escape(s) for s in TEMP_SUFFIXES)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}(?:{suffixes})$")
    found: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        pid = int(match.group(1)) if match.group(1) else None
        if age > STALE_AFTER or (pid is not None and not _pid_alive(pid)):
            found.append(Path(entry.path))
    return found


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove :func:`stale_temporaries`; return what was removed."""
    removed = []
    for path in stale_temporaries(target):
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def lock_path(target: Path) -> Path:
    """The lock file beside ``target``: ``.NAME.lock``."""
    return target.with_name(f".{target.name}.lock")


class OutputLock:
    """An advisory lock (``flock``) on a checkpoint's lock file, held while a run writes it.

    A second run asking for the same target gets :class:`CheckpointError` naming the
    process that holds it. The lock file is removed on release; a crash leaves it, and
    the next run takes it over (the kernel released the lock with the process).
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = lock_path(target)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`CheckpointError`."""
        if fcntl is None:  # pragma: no cover
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise CheckpointError(
                        f"cannot lock {self.path} for the checkpoint {self.target}: {_reason(exc)}"
                    ) from None
                raise CheckpointError(
                    f"another run (pid {holder}) is writing the checkpoint {self.target}: wait "
                    "for it to finish or choose another --out"
                ) from None
            try:  # the holder before us may have removed the file after we opened it
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def prepare_output(target: Path) -> OutputLock:
    """Check ``target`` is writable, lock it and clear stale temporaries (in that order):
    call before training; release the returned lock once the checkpoint is written."""
    check_writable(target)
    lock = OutputLock(target).acquire()
    remove_stale_temporaries(target)
    return lock


def fallback_path(target: Path) -> Path:
    """Where a checkpoint goes when ``target`` cannot take it: the system's temporary
    directory, under a name that says whose it is."""
    return Path(tempfile.gettempdir()) / f"fflib-unsaved-{os.getpid()}-{target.name}"


@dataclass(frozen=True)
class Saved:
    """Where a checkpoint was written, and why not to the target (``None``: it was)."""

    path: Path
    problem: str | None = None


def save_with_fallback(save: Callable[[Path], Path], target: Path) -> Saved:
    """``save(target)``; if that fails with an OS error, ``save`` to :func:`fallback_path`.

    Raises :class:`CheckpointError` naming both failures if the fallback fails too.
    """
    try:
        return Saved(save(target))
    except OSError as exc:
        first = _reason(exc)
    fallback = fallback_path(target)
    try:
        saved = save(fallback)
    except OSError as exc:
        raise CheckpointError(
            f"could not save the checkpoint to {target} ({first}) nor to {fallback} "
            f"({_reason(exc)}): the trained weights are lost; free some space or raise the "
            "file size limit"
        ) from None
    return Saved(
        saved, f"could not save the checkpoint to {target} ({first}); saved it to {saved} instead"
    )


def resumed_output(resume: Path, saved_out: str | None, default_name: str) -> Path:
    """Where a resumed run writes when ``--out`` is not given: beside the checkpoint it
    resumes from, under the name the run was saved as. A directory stored in the
    checkpoint is not used: it names the machine and directory the run started in, and
    a path read from a file decides nothing here."""
    name = Path(saved_out).name if saved_out else default_name
    if name in ("", ".", ".."):
        name = resume.name
    return resume.parent / name
