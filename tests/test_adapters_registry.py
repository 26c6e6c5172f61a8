"""The registry: third-party families through the ``mm_align.adapters`` entry point group, a
family that fails to import disabled alone with its reason, and ``mm-align families``."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mm_align.adapters import (
    UnsupportedModelError,
    adapter_class,
    disabled_families,
    registry,
    supported_families,
)
from mm_align.cli import main
from mm_align.cli.families import families_table

PLUGIN = '''
from mm_align.adapters import register
from mm_align.adapters.llava import LlavaAdapter


@register("toy_llava")
class ToyLlava(LlavaAdapter):
    example_id = "lab/toy-llava"
'''


def install_plugin(folder: Path, module: str, source: str, points: dict[str, str]) -> None:
    """An installed distribution in ``folder``: module ``module`` with ``source`` and its
    ``*.dist-info`` naming ``points`` (entry point name -> module) in ``mm_align.adapters``."""
    (folder / f"{module}.py").write_text(source)
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in points.items())
    (info / "entry_points.txt").write_text(f"[mm_align.adapters]\n{lines}")


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution with two ``mm_align.adapters`` entry points: a working
    family module and one whose import fails; the registry reloads with them."""
    # The built-in families register now, in the registry kept after the test: imported first
    # under the copy below, they would be gone from it afterwards (a module registers once).
    supported_families()
    install_plugin(tmp_path, "toy_family", PLUGIN, {"toy_llava": "toy_family", "broken_family": "toy_missing_module"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_family", raising=False)  # imported afresh: registers again
    importlib.invalidate_caches()
    monkeypatch.setattr(registry, "_ADAPTERS", dict(registry._ADAPTERS))
    monkeypatch.setattr(registry, "_DISABLED", {})
    monkeypatch.setattr(registry, "_STARTED", threading.Event())  # import again, now with the plugins
    return tmp_path  # undone after the test: the registry as it was, without the plugins


def test_entry_point_family_is_served_and_a_broken_one_is_disabled_alone(plugins) -> None:
    assert any(point.name == "toy_llava" for point in importlib.metadata.entry_points(group="mm_align.adapters"))
    families = supported_families()
    assert "toy_llava" in families and "llava" in families and "qwen2_5_vl" in families
    assert adapter_class("toy_llava").example_id == "lab/toy-llava"
    reasons = disabled_families()
    assert list(reasons) == ["broken_family"]
    assert "toy_missing_module" in reasons["broken_family"]
    with pytest.raises(UnsupportedModelError, match="not supported \\(ModuleNotFoundError"):
        adapter_class("broken_family")


def test_families_command_lists_served_and_disabled(plugins, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    for family in supported_families():
        assert f"\n{family}: prompts " in f"\n{out}"
    assert "e.g. lab/toy-llava" in out and max(len(line) for line in out.splitlines()) <= 100
    assert main(["families", "--format", "markdown"]) == 0
    assert "| `lab/toy-llava` |" in capsys.readouterr().out
    assert "not available:\n- broken_family: ModuleNotFoundError" in out


def test_families_table_is_in_the_docs() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "FAMILIES.md"
    assert families_table() in docs.read_text()


def test_every_family_says_where_its_stages_are_read() -> None:
    for family in supported_families():
        cls = adapter_class(family)
        taps = cls.taps()
        assert taps["vision"] and taps["projector"] and "(family-defined)" not in taps.values()
        assert ("merged" in taps) == ("merged" in cls.vision_views)
        assert cls.example_id.count("/") == 1


ROOT = Path(__file__).resolve().parents[1]
# What a plugin author writes: the package's public names only, and a lookup while it imports.
PUBLIC_PLUGIN = '''
from mm_align.adapters import GenericVLMAdapter, VLMAdapter, adapter_class, register


@register("lab_vlm")
class LabVLM(adapter_class("llava_next")):
    example_id = "lab/lab-vlm"


assert issubclass(LabVLM, GenericVLMAdapter) and issubclass(LabVLM, VLMAdapter)
'''


def _builtin_families() -> set[str]:
    """The model types registered by the modules of mm_align/adapters, read from their source."""
    found = set()
    for path in (ROOT / "mm_align" / "adapters").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register" and node.args:
                found.add(node.args[0].value)
    return found


def test_a_fresh_process_serves_a_plugin_and_disables_only_what_fails(tmp_path: Path) -> None:
    """A fresh ``mm-align families`` with an installed plugin (a dist-info folder on the path)
    that imports ``register`` from the package, a plugin whose module is missing, and the
    llava family module made unimportable: the plugin is served, the two failures are listed
    as not available, and every other family still is served (none imports llava's module)."""
    install_plugin(tmp_path, "lab_plugin", PUBLIC_PLUGIN, {"lab_vlm": "lab_plugin", "lab_broken": "lab_plugin_missing"})
    code = ("import sys; sys.modules['mm_align.adapters.llava'] = None\n"  # its import now fails
            "from mm_align.cli import main; raise SystemExit(main(['families', '--format', 'markdown']))")
    path = os.pathsep.join(p for p in (str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    table, _, unavailable = done.stdout.partition("\nnot available:\n")
    served = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert served == _builtin_families() - {"llava"} | {"lab_vlm"}
    assert "`lab/lab-vlm`" in table
    reasons = dict(line[2:].split(": ", 1) for line in unavailable.splitlines())
    assert sorted(reasons) == ["lab_broken", "llava"]
    assert "lab_plugin_missing" in reasons["lab_broken"] and "ModuleNotFoundError" in reasons["llava"]
