"""House rules that a reader would otherwise have to check by hand: light imports, layers that
only import downwards, no two modules importing each other, short modules and functions."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import HEAVY, ROOT, loaded_after

PACKAGE = ROOT / "mm_align"

LAYERS = {
    # Leaves: import nothing of mm_align, so any layer may use them.
    "mm_align.stages": 0, "mm_align.warn": 0, "mm_align.config": 0, "mm_align.options": 0,
    "mm_align._version": 0, "mm_align.constants": 0, "mm_align.report_failures": 0,
    "mm_align.metrics": 1, "mm_align.data": 1,
    "mm_align.capture": 2, "mm_align.adapters": 2,
    "mm_align.pipeline": 3, "mm_align.rundir": 3,
    "mm_align.report": 4,
    "mm_align.api": 5, "mm_align.integrations": 5,
    "mm_align.cli": 6,
    "mm_align": 7, "mm_align.__main__": 7,  # the package root is the top: nothing imports it
}
"""Layer of every module, by its longest listed prefix; a module may import its own layer or
lower ones. This is the one definition of the layering that docs/ARCHITECTURE.md describes."""

# Being fixed in issue 21 (other branches): the lead empties these lists after merging them.
# An entry that no longer occurs fails the tests below, so the lists cannot go stale.
KNOWN_UPWARD_IMPORTS = {
    ("mm_align.cli", "mm_align"),  # __version__
}
KNOWN_MUTUAL_IMPORTS: set[tuple[str, str]] = set()
KNOWN_LONG_MODULES: set[str] = set()

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _target(module: str, name: str) -> str:
    """What ``from module import name`` imports: the submodule if there is one, else module."""
    return f"{module}.{name}" if f"{module}.{name}" in _modules() else module


def _imports(name: str, path: Path) -> set[str]:
    """The mm_align modules ``name`` imports anywhere in its file (lazy imports inside
    functions and ``TYPE_CHECKING`` blocks count too: they are dependencies all the same)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.split(".")[0] == "mm_align"}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module.split(".")[0] == "mm_align":
                out |= {_target(module, alias.name) for alias in node.names}
    return out - {name}


@functools.cache
def import_graph() -> dict[str, frozenset[str]]:
    """module -> the mm_align modules it imports."""
    return {name: frozenset(_imports(name, path)) for name, path in _modules().items()}


def layer(module: str) -> int:
    while module not in LAYERS:
        if "." not in module:
            raise KeyError(module)
        module = module.rsplit(".", 1)[0]
    return LAYERS[module]


def _check(found: set, known: set, what: str) -> None:
    assert found - known == set(), f"new {what}"
    assert known - found == set(), f"fixed {what}: remove them from the allow-list"


def test_every_module_has_a_layer() -> None:
    orphans = [name for name in _modules() if name.count(".") == 1 and name not in LAYERS]
    assert orphans == [], "add these modules to LAYERS (and to docs/ARCHITECTURE.md)"


def test_no_module_imports_a_higher_layer() -> None:
    upward = {(a, b) for a, targets in import_graph().items() for b in targets if layer(b) > layer(a)}
    _check(upward, KNOWN_UPWARD_IMPORTS, "imports that run up a layer")


def test_no_two_modules_import_each_other() -> None:
    graph = import_graph()
    mutual = {(a, b) for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, ())}
    _check(mutual, KNOWN_MUTUAL_IMPORTS, "modules that import each other")


def test_the_import_graph_reads_every_form_of_import(tmp_path: Path) -> None:
    """The graph is right about the forms it must read (else the rules above pass vacuously)."""
    (tmp_path / "probe.py").write_text("from . import spectral\nfrom .gram import lower_gram\n"
                                       "from .. import config\nimport mm_align.data.images\n"
                                       "def f():\n    from mm_align.adapters import registry\n")
    assert _imports("mm_align.metrics.probe", tmp_path / "probe.py") == {
        "mm_align.metrics.spectral", "mm_align.metrics.gram", "mm_align.config", "mm_align.data.images",
        "mm_align.adapters.registry"}
    graph = import_graph()
    assert "mm_align.metrics.spectral" in graph["mm_align.metrics"]  # from mm_align.metrics.spectral import
    assert "mm_align.cli.score" not in graph["mm_align.cli"]  # importlib, not an import statement
    assert all(target in _modules() for targets in graph.values() for target in targets)


def test_no_module_longer_than_500_lines() -> None:
    long = {name for name, path in _modules().items()
            if len(path.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES}
    _check(long, KNOWN_LONG_MODULES, f"modules over {MAX_MODULE_LINES} lines")


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_longer_than_80_lines() -> None:
    long = [f"{path.relative_to(ROOT)}:{name} ({n} lines)"
            for path in _modules().values()
            for name, n in _functions(path) if n > MAX_FUNCTION_LINES]
    assert long == []


HELP_PROBE = """
import argparse, json, sys
from mm_align.cli import build_parser, main
heavy = lambda: sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))
commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
after = {}
for argv in [["--help"], *([name, "--help"] for name in commands)]:
    try:
        main(argv)
    except SystemExit:
        pass
    after[" ".join(argv)] = heavy()
print(json.dumps(after))
"""


def test_help_of_every_command_loads_nothing_heavy() -> None:
    """``mm-align --help`` and every ``mm-align COMMAND --help``, in one fresh interpreter."""
    probe = HELP_PROBE.replace("set(HEAVY)", repr(set(HEAVY)))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    after = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(after) > 10
    assert next(((argv, mods) for argv, mods in after.items() if mods), None) is None


def test_import_mm_align_is_light_until_a_name_is_used() -> None:
    assert loaded_after("import mm_align; mm_align.__all__; mm_align.ScoreConfig") == set()
    assert "torch" in loaded_after("import mm_align; mm_align.erank")  # the probe sees a load


def test_metrics_load_only_torch() -> None:
    """Every metric module imports torch and numpy at most: scikit-learn (Lasso) and scipy
    (offset power-law fit) load inside the functions that need them; nothing pulls in
    transformers, torchvision or matplotlib."""
    code = ("import importlib, pkgutil, mm_align.metrics as m\n"
            "for info in pkgutil.iter_modules(m.__path__):\n"
            "    importlib.import_module('mm_align.metrics.' + info.name)")
    assert loaded_after(code) <= {"torch"}
    assert loaded_after("from mm_align import erank") <= {"torch"}


def test_public_names_resolve() -> None:
    import mm_align

    for name in mm_align.__all__:
        assert getattr(mm_align, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mm_align.nope  # noqa: B018


def test_run_directory_files_are_written_in_one_module() -> None:
    """Only mm_align/rundir/layout.py names the run directory's files."""
    names = ('"results.jsonl"', '"errors.jsonl"', '"config.json"', '"summary.json"')
    writers = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                     if any(n in p.read_text(encoding="utf-8") for n in names))
    assert writers == ["mm_align/rundir/layout.py"]


def test_the_version_lives_in_a_leaf_module_equal_to_pyprojects() -> None:
    import tomllib

    from mm_align._version import __version__

    assert __version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for leaf in ("_version.py", "constants.py"):
        tree = ast.parse((PACKAGE / leaf).read_text(encoding="utf-8"))
        assert not any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)), leaf
