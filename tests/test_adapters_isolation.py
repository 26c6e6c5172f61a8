"""A family is one file: read from the sources of mm_align/adapters, no module imports a family
module (a module that registers a family), no two modules import each other, and no module
is over 500 lines. The family list is the registry's."""

from __future__ import annotations

import ast
from pathlib import Path

from mm_align.adapters import adapter_class, supported_families

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ROOT / "mm_align" / "adapters"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(ADAPTERS.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The modules of mm_align.adapters that module ``name`` imports (at any depth of its code);
    ``from package import submodule`` counts as importing the submodule."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in MODULES and module != name}


def _family_modules() -> set[str]:
    return {adapter_class(family).__module__ for family in supported_families()} & set(MODULES)


def test_the_family_list_is_the_registry_s() -> None:
    families = _family_modules()
    assert {"mm_align.adapters.llava", "mm_align.adapters.smolvlm", "mm_align.adapters.minigpt_v2"} <= families
    assert "mm_align.adapters.generic" not in families and "mm_align.adapters.qwen_style" not in families


def test_no_module_imports_a_family_module() -> None:
    families = _family_modules()
    offending = {name: sorted(_imports(name) & families) for name in MODULES}
    assert {name: found for name, found in offending.items() if found} == {}


def test_no_two_adapter_modules_import_each_other() -> None:
    graph = {name: _imports(name) for name in MODULES}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        seen[name] = 1
        for child in sorted(graph[name]):
            if seen.get(child) == 1:
                return [*path, child]
            if child not in seen and (cycle := visit(child, [*path, child])):
                return cycle
        seen[name] = 2
        return None

    cycles = [cycle for name in sorted(graph) if name not in seen and (cycle := visit(name, [name]))]
    assert cycles == []


def test_no_adapter_module_is_over_500_lines() -> None:
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_the_import_reader_sees_what_the_families_import() -> None:
    """The reader itself: it finds the imports a family module really has."""
    assert {"mm_align.adapters.tiny", "mm_align.adapters.tiny.idefics", "mm_align.adapters.idefics_style",
            "mm_align.adapters.registry"} <= _imports("mm_align.adapters.smolvlm")
    assert "mm_align.adapters.registry" in _imports("mm_align.adapters")
