"""No trained run is lost: the output is checked before training, locked against a second
run, saved with the umask's permissions, with a fallback when the save fails after all."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ffcore.checkpoint import load_checkpoint, save_checkpoint
from ffcore.output import (
    STALE_AFTER,
    OutputLock,
    lock_path,
    prepare_output,
    stale_temporaries,
)
from tests.core.checkpoint_surgery import assert_one_clean_error, invoke, trained_checkpoint
from tests.core.scripts import start_script
from tests.core.test_cli import ff_executable

TINY = ["train", "--preset", "plain", "--layers", "8", "--epochs", "1", "--device", "cpu"]


def unwritable_targets(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Outputs that cannot take a checkpoint, with the reason the error gives."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    return {
        "parent is a file": (a_file / "run.pt", f"{a_file} is not a directory"),
        "name too long": (tmp_path / ("x" * 300 + ".pt"), "File name too long"),
        "/proc": (Path("/proc/fflib-run.pt"), "cannot write the checkpoint to /proc/fflib-run.pt"),
        "a directory": (a_dir, "is a directory"),
    }


@pytest.mark.parametrize("case", ["parent is a file", "name too long", "/proc", "a directory"])
def test_an_unusable_out_is_refused_before_training(tmp_path: Path, case: str) -> None:
    target, reason = unwritable_targets(tmp_path)[case]
    result = invoke(*TINY, "--out", str(target))
    assert_one_clean_error(result, str(target), reason)
    assert "epoch 1/1" not in result.output  # no training happened


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused_before_training(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = invoke(*TINY, "--out", str(locked / "run.pt"))
    finally:
        locked.chmod(0o700)
    assert_one_clean_error(result, "Permission denied")
    assert "epoch 1/1" not in result.output


def test_a_failed_final_save_goes_to_a_fallback_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up after training: the run is written to the temporary directory."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    target = tmp_path / "out" / "run.pt"

    def disk_full(path: Any, *args: Any, **kwargs: Any) -> Path:
        if Path(path) == target:
            raise OSError(28, "No space left on device")
        return save_checkpoint(path, *args, **kwargs)

    monkeypatch.setattr("ffcore.runs.save_checkpoint", disk_full)
    result = invoke(*TINY, "--out", str(target))
    assert result.exit_code == 0, result.output
    [fallback] = system_tmp.iterdir()
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: could not save the checkpoint to {target} (No space left on device); "
        f"saved it to {fallback} instead"
    ]
    assert f"checkpoint: {fallback}" in result.output
    loaded = load_checkpoint(fallback)
    assert loaded.meta["complete"] is True and "test_acc" in loaded.meta["metrics"]
    assert not target.exists() and not lock_path(target).exists()


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_ulimit_f_ends_in_one_line_naming_both_attempts(tmp_path: Path) -> None:
    """``ulimit -f`` caps every file: the target and the fallback both fail, and say so."""
    target = tmp_path / "run.pt"
    env = {**os.environ, "TMPDIR": str(tmp_path / "system-tmp")}
    (tmp_path / "system-tmp").mkdir()
    done = subprocess.run(
        [ff_executable(), *TINY, "--out", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert f"could not save the checkpoint to {target} (File too large) nor to" in line
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["system-tmp"]  # no temporary left


def test_checkpoints_respect_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        written = trained_checkpoint(tmp_path / "shared.pt")
        assert stat.S_IMODE(written.stat().st_mode) == 0o644
        os.umask(0o077)
        private = trained_checkpoint(tmp_path / "private.pt")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        written.chmod(0o640)  # a file replaced keeps the mode it was given
        trained_checkpoint(written)
        assert stat.S_IMODE(written.stat().st_mode) == 0o640
    finally:
        os.umask(previous)


SAVER = """
import sys, torch
from pathlib import Path
from ffcore.checkpoint import atomic_write
target = Path(sys.argv[1])
big = torch.randn(64, 1024, 1024)
print("saving", flush=True)
atomic_write(target, lambda f: torch.save({"data": big}, f))
"""


def test_temporaries_of_a_killed_save_are_cleaned_by_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    process = start_script(tmp_path / "saver.py", SAVER, str(target), ready="saving")
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".ckpt.pt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    [left] = list(tmp_path.glob(".ckpt.pt.*.tmp"))
    assert left.name.startswith(f".ckpt.pt.{process.pid}.")  # the writer is named
    result = invoke(*TINY, "--out", str(target))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "saver.py"]


def test_which_temporaries_are_stale(tmp_path: Path) -> None:
    target = tmp_path / "run.pt"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    names = {
        "dead writer": f".run.pt.{dead_pid}.abcdefgh.tmp",
        "old, no pid": ".run.pt.abcdefgh.tmp",
        "live writer": f".run.pt.{os.getpid()}.abcdefgh.tmp",
        "probe of a dead run": f".run.pt.{dead_pid}.ijklmnop.probe",
        "someone else's": ".run.pt.notours.tmp",
        "another target": f".other.pt.{dead_pid}.abcdefgh.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    old = time.time() - 2 * STALE_AFTER
    os.utime(tmp_path / names["old, no pid"], (old, old))
    stale = {p.name for p in stale_temporaries(target)}
    assert stale == {names["dead writer"], names["old, no pid"], names["probe of a dead run"]}


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from ffcore.output import prepare_output
lock = prepare_output(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_run_on_the_same_out_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "run.pt"
    holder = start_script(tmp_path / "holder.py", LOCK_HOLDER, str(target), ready="locked")
    try:
        result = invoke(*TINY, "--out", str(target))
        assert_one_clean_error(
            result,
            f"another run (pid {holder.pid}) is writing the checkpoint {target}",
            "choose another --out",
        )
        assert "epoch 1/1" not in result.output and not target.exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # the holder died without releasing: its lock file stays, but the lock went with it
    assert lock_path(target).exists()
    assert invoke(*TINY, "--out", str(target)).exit_code == 0
    assert not lock_path(target).exists()


def test_the_lock_is_taken_over_after_its_file_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "run.pt"
    first = OutputLock(target).acquire()
    first.release()
    with OutputLock(target), pytest.raises(Exception, match="another run"):
        prepare_output(target)
    assert not lock_path(target).exists()


def test_resume_with_a_relative_out_writes_beside_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, elsewhere = tmp_path / "started", tmp_path / "elsewhere"
    started.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(started)
    first = invoke(*TINY, "--out", "run.pt")
    assert first.exit_code == 0, first.output
    monkeypatch.chdir(elsewhere)
    result = invoke("train", "--resume", str(started / "run.pt"), "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []
    assert load_checkpoint(started / "run.pt").meta["epoch"] == 2
    assert f"checkpoint: {started / 'run.pt'}" in result.output


def test_save_checkpoint_from_python_keeps_working(tmp_path: Path) -> None:
    """The API writes where it is told; only ff train checks, locks and falls back."""
    import ffcore

    model = ffcore.create_model("ffnet", input_shape=(4,), num_classes=2, layers=[4])
    path = save_checkpoint(
        tmp_path / "deep" / "m.pt",
        model,
        model_name="ffnet",
        model_options={"layers": [4]},
        input_shape=(4,),
        num_classes=2,
    )
    assert load_checkpoint(path).meta["num_classes"] == 2
