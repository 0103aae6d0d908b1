"""ff starts fast: --version, --help, list-plugins and completion never import torch.

Plugins register components by reference (``"package.module:function"``), imported the
first time a component is built; ``ffcore`` imports its torch-heavy helpers on first use.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.shell_completion import BashComplete, ZshComplete
from click.testing import CliRunner

import ffcore
from ffcore.cli.main import cli
from ffcore.components import LazyFactory, Registry
from ffcore.errors import PluginError
from ffcore.plugin_manager import FFPluginManager

#: Runs ff in a fresh interpreter and reports on stderr whether torch got imported.
DRIVER = textwrap.dedent("""
    import sys
    from ffcore.cli.main import main
    try:
        sys.argv = ["ff", *sys.argv[1:]]
        main()
    except SystemExit:
        pass
    print("torch imported" if "torch" in sys.modules else "no torch", file=sys.stderr)
    """)


def run_ff(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--help",),
        ("list-plugins",),
        ("list-plugins", "--json"),
        ("train", "--help"),
        ("eval", "--help"),
        ("debug", "--help"),
        ("completion", "zsh"),
    ],
)
def test_light_commands_do_not_import_torch(args: tuple[str, ...]) -> None:
    result = run_ff(*args)
    assert result.stderr.strip().endswith("no torch"), (
        f"ff {' '.join(args)} imported torch; if the built-in plugins' entry points look "
        f"stale, reinstall (pip install -e .): {result.stderr[-2000:]}"
    )
    assert result.stdout


def test_list_plugins_still_shows_every_component_without_torch() -> None:
    result = run_ff("list-plugins")
    assert result.stderr.strip().endswith("no torch")
    for line in ("model      ffnet:", "dataset    digits:", "goodness   sum-squares", "ff debug:"):
        assert line in result.stdout


def test_shell_completion_does_not_import_torch_and_offers_models() -> None:
    result = run_ff(
        env={
            "_FF_COMPLETE": "bash_complete",
            "COMP_WORDS": "ff train --model ff",
            "COMP_CWORD": "3",
        }
    )
    assert result.stderr.strip().endswith("no torch")
    offered = {line.split(",", 1)[1] for line in result.stdout.splitlines()}
    assert {"ffnet", "ffc", "ffrnn"} <= offered and "bp" not in offered


def completions(*words: str, incomplete: str = "", shell: type = BashComplete) -> list[str]:
    completer = shell(cli, {}, "ff", "_FF_COMPLETE")
    return [item.value for item in completer.get_completions(list(words), incomplete)]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--model", {"ffnet", "ffc", "ffrnn", "bp"}),
        ("--dataset", {"digits", "fashion-mnist", "mnist", "cifar10", "xor"}),
        ("--goodness", {"sum-squares", "mean-squares"}),
        ("--loss", {"softplus-threshold", "symba"}),
        ("--negatives", {"random", "hard", "inverse", "neutral"}),
        ("--probe", {"tryall", "classifier"}),
        ("--preset", {"digits", "fashion-mnist", "plain", "seed"}),
    ],
)
def test_train_options_complete_component_names(option: str, expected: set[str]) -> None:
    assert expected <= set(completions("train", option))


def test_completion_filters_by_prefix_and_falls_back_to_aliases() -> None:
    assert completions("train", "--negatives", incomplete="h") == ["hard"]
    assert completions("train", "--loss", incomplete="hin") == ["hinton"]  # an alias
    assert completions("eval", "x.pt", "--dataset", incomplete="fash", shell=ZshComplete) == [
        "fashion-mnist"
    ]


def test_completion_offers_components_a_plugin_registered(manager: FFPluginManager) -> None:
    class Toy:
        @staticmethod
        @ffcore.hookimpl
        def fflib_register_models(register: ffcore.hookspecs.Register) -> None:
            register("toy-net", "ffplugins.ffnet:ffnet", description="A toy.")

    manager.register(Toy, name="toy")
    assert "toy-net" in completions("train", "--model", incomplete="toy")


def test_ff_completion_prints_the_shell_script() -> None:
    for shell, marker in (("bash", "complete -o nosort"), ("zsh", "compdef"), ("fish", "complete")):
        result = CliRunner().invoke(cli, ["completion", shell])
        assert result.exit_code == 0 and "_FF_COMPLETE" in result.output, shell
        assert marker in result.output


# --- components registered by reference -----------------------------------------------


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_reference_is_imported_when_the_component_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(
        tmp_path,
        monkeypatch,
        "ff_lazy_probe",
        '''
        IMPORTED = True

        def make(scale: int = 1) -> dict[str, int]:
            """Builds a thing."""
            return {"scale": scale}
        ''',
    )
    registry = Registry("preset")
    spec = registry.register("thing", "ff_lazy_probe:make", description="A thing.")
    assert "ff_lazy_probe" not in sys.modules
    assert spec.description == "A thing." and isinstance(spec.factory, LazyFactory)
    assert registry.create("thing", scale=3) == {"scale": 3}
    assert "ff_lazy_probe" in sys.modules and spec.option_names() == ["scale"]


def test_a_reference_without_a_description_is_imported_to_read_the_docstring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path, monkeypatch, "ff_lazy_doc", 'def make():\n    """Docs here."""\n')
    spec = Registry("preset").register("doc", "ff_lazy_doc:make")
    assert spec.description == "Docs here."


def test_a_reference_that_does_not_import_names_the_component_and_plugin() -> None:
    registry = Registry("model")
    registry.register("ghost", "no_such_module_anywhere:make", description="x", plugin="ghosts")
    with pytest.raises(PluginError, match=r"model 'ghost' of plugin 'ghosts': cannot import"):
        registry.create("ghost")


@pytest.mark.parametrize("reference", ["no colon", "a.b:", ":f", "a b:c"])
def test_a_malformed_reference_is_refused_at_registration(reference: str) -> None:
    with pytest.raises(PluginError, match="expected a callable or a reference"):
        Registry("model").register("bad", reference, description="x", plugin="p")


def test_a_reference_to_something_not_callable_is_a_plugin_error() -> None:
    registry = Registry("model")
    registry.register("pi", "math:pi", description="not a factory", plugin="p")
    with pytest.raises(PluginError, match="not callable"):
        registry.create("pi")


def test_the_catalog_descriptions_are_the_factories_docstrings(manager: FFPluginManager) -> None:
    checked = 0
    for registry in manager.registries.values():
        for spec in registry.specs():
            if not isinstance(spec.factory, LazyFactory):
                continue
            doc = inspect.getdoc(spec.factory.resolve()) or ""
            assert spec.description == doc.strip().splitlines()[0], spec.name
            checked += 1
    assert checked >= 25  # every built-in component but the presets, and the conv plugin's


def test_ffcore_imports_its_registry_helpers_on_first_use() -> None:
    assert ffcore.list_models is importlib.import_module("ffcore.registry").list_models
    assert ffcore.interfaces.FFLayer.__name__ == "FFLayer"  # submodules load on access
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = ffcore.nothing_here
