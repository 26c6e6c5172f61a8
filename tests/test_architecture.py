"""House rules that a reader would otherwise have to check by hand: light imports, short
functions, one home per concept."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "torchvision", "matplotlib", "datasets")


def loaded_after(code: str) -> set[str]:
    """The heavy top-level modules loaded after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["diff-erank", "--help"],
                                  ["tiny", "--help"], ["compare", "--help"], ["report", "--help"]])
def test_help_loads_neither_torch_nor_transformers(argv) -> None:
    code = f"from mm_align.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == set()


def test_import_mm_align_is_light_until_a_name_is_used() -> None:
    assert loaded_after("import mm_align; mm_align.__all__; mm_align.ScoreConfig") == set()
    assert "transformers" in loaded_after("import mm_align; mm_align.load_vlm")


def test_metrics_load_no_transformers_torchvision_or_matplotlib() -> None:
    assert loaded_after("import mm_align.metrics") <= {"torch"}
    assert loaded_after("from mm_align import erank") <= {"torch"}


def test_public_names_resolve() -> None:
    import mm_align

    for name in mm_align.__all__:
        assert getattr(mm_align, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mm_align.nope  # noqa: B018


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_longer_than_80_lines() -> None:
    long = [f"{path.relative_to(ROOT)}:{name} ({n} lines)"
            for path in sorted((ROOT / "mm_align").rglob("*.py"))
            for name, n in _functions(path) if n > 80]
    assert long == []


def test_run_directory_files_are_written_in_one_module() -> None:
    """Only mm_align/rundir.py names the run directory's files."""
    names = ('"results.jsonl"', '"errors.jsonl"', '"config.json"', '"summary.json"')
    writers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "mm_align").rglob("*.py")
                     if any(n in p.read_text(encoding="utf-8") for n in names))
    assert writers == ["mm_align/rundir.py"]


def test_scoring_does_not_import_the_report() -> None:
    for path in (ROOT / "mm_align" / "pipeline").glob("*.py"):
        assert "mm_align.report" not in path.read_text(encoding="utf-8"), path.name
