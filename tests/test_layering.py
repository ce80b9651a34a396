"""The house's import directions (../shared/STYLE.md), read from the source with `ast`.

Every `import` and `from ... import` in cnnlab, at module level and inside functions, is an
edge from its module's group to the imported module's group; an edge STYLE.md does not draw
fails here. The imports, those inside functions included, must also form no cycle.

    cli / __main__  ->  recipes  ->  train  ->  run  ->  data/loader, models, device, plots
    cli             ->  report, inspect, compare, export, cost   ->  run
    d2l (drop-in)   ->  data/loader, models, ops, device      (nothing imports d2l)
    models          ->  layers  ->  ops

Nothing is left out: an import inside a function, or under `if __name__ == "__main__":`, is an
edge like any other (`python -m cnnlab train` goes through `cnnlab/__main__.py`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnnlab"

# Group of each module (the first matching prefix, longest first), lowest to highest.
GROUPS: dict[str, tuple[str, ...]] = {
    "errors": ("cnnlab.errors",),
    "files": ("cnnlab.atomic",),  # the one atomic writer, under everything that writes a file
    "ops": ("cnnlab.ops", "cnnlab.shapes"),
    "layers": ("cnnlab.layers",),
    "models": ("cnnlab.models",),
    "loader": ("cnnlab.loader",),  # Split and Loader: below the datasets that fill them
    # the foundations the engine and the pages stand on; they know no models
    "base": ("cnnlab.data", "cnnlab.imagefolder", "cnnlab.download", "cnnlab.device",
             "cnnlab.plots", "cnnlab.pages", "cnnlab.train_config", "cnnlab.notebook"),
    "services": ("cnnlab.checkpoint", "cnnlab.runlog", "cnnlab.runfiles", "cnnlab.progress",
                 "cnnlab.distributed", "cnnlab.schedule", "cnnlab.stopsignals",
                 "cnnlab.runsview"),
    "inputs": ("cnnlab.inputs",),  # what a run feeds its model: data and models meet here
    "run": ("cnnlab.run",),
    "engine": ("cnnlab.train", "cnnlab.runsetup", "cnnlab.trainstate",
               "cnnlab.epochmeter"),
    # named experiments, running several (suites, sweeps), and the learning-rate range test
    "recipes": ("cnnlab.recipes", "cnnlab.suite", "cnnlab.sweep", "cnnlab.sweep_space",
                "cnnlab.sweep_page", "cnnlab.lrfind"),
    "cost": ("cnnlab.cost", "cnnlab.opcount", "cnnlab.memory"),
    "pages": ("cnnlab.report", "cnnlab.inspect", "cnnlab.inspect_page", "cnnlab.edgedemo",
              "cnnlab.compare", "cnnlab.export"),
    "face": ("cnnlab.cli", "cnnlab.__main__"),
    "d2l": ("cnnlab.d2l",),
    "package": ("cnnlab",),  # cnnlab/__init__.py: the public names, loaded lazily
}

# What each group may import directly (besides itself); the closure is taken below.
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "files": {"errors"},
    "ops": {"errors"},
    "layers": {"ops"},
    "models": {"layers"},
    "loader": {"ops"},  # (H, W) sizes come from cnnlab.shapes
    "base": {"loader", "files"},  # never models
    "services": {"base"},
    "inputs": {"base", "models"},
    "run": {"services", "inputs"},
    "engine": {"run"},
    "recipes": {"engine"},
    "cost": {"inputs"},  # the memory guard sizes a run through its inputs
    "pages": {"cost", "run"},
    "face": {"recipes", "pages"},
    "d2l": {"base", "models"},
    "package": {"run"},
}


def _closure() -> dict[str, set[str]]:
    out = {}
    for group in MAY_IMPORT:
        seen, todo = set(), [group]
        while todo:
            for dep in MAY_IMPORT[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        out[group] = seen | {group}
    return out


ALLOWED = _closure()


def group_of(module: str) -> str:
    best, size = "", -1
    for group, prefixes in GROUPS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > size:
                best, size = group, len(p)
    assert best, f"{module} belongs to no group: add it to GROUPS in {__file__}"
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported cnnlab module, line, at module level) for every import in `module`."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from . import x, from ..models import y
                    anchor = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for a in child.names:  # `from cnnlab import data` imports cnnlab.data
                    sub = f"{base}.{a.name}"
                    out.append((sub if sub in MODULES else base, child.lineno, top))
            inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, top and not inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return [(m, line, top) for m, line, top in out if m == "cnnlab" or m.startswith("cnnlab.")]


def test_every_module_has_a_group() -> None:
    for module in MODULES:
        group_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_from_the_face_to_the_foundations(module: str) -> None:
    here = group_of(module)
    wrong = []
    for target, line, _ in imports(module):
        there = group_of(target)
        if target == "cnnlab" or there in ALLOWED[here]:
            continue  # the package itself (its __version__) is everyone's
        wrong.append(f"{MODULES[module].name}:{line} imports {target} ({here} -> {there})")
    assert not wrong, "against ../shared/STYLE.md:\n" + "\n".join(wrong)


def test_nothing_outside_the_drop_in_imports_it() -> None:
    for module in MODULES:
        if group_of(module) != "d2l":
            assert not [t for t, _, _ in imports(module) if group_of(t) == "d2l"], module


def test_no_import_cycles() -> None:
    """No cycle, counting imports inside functions: a deferred import is still a dependency."""
    graph = {m: {t for t, _, _ in imports(m) if t in MODULES and t != m} for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_sees_what_a_substring_match_missed(tmp_path: Path) -> None:
    """`from cnnlab import cli` in the engine, a function-level import, a relative one and one
    under a `__main__` guard (counted: no import is exempt)."""
    src = ("from cnnlab import cli\n"
           "def f():\n    from cnnlab.report import write_report\n"
           "from . import d2l\n"
           "if __name__ == '__main__':\n    import cnnlab.cli\n")
    fake = PACKAGE / "train.py"
    MODULES["cnnlab.train"] = tmp_path / "train.py"
    try:
        (tmp_path / "train.py").write_text(src)
        # relative imports resolve against the real package, not tmp_path
        listed = imports("cnnlab.train")
    finally:
        MODULES["cnnlab.train"] = fake
    found = {(t, top) for t, _, top in listed}
    assert found == {("cnnlab.cli", True), ("cnnlab.report", False), ("cnnlab.d2l", True)}
    assert [line for t, line, _ in listed if t == "cnnlab.cli"] == [1, 6]  # the guard's too
    for target, _ in found:
        assert group_of(target) not in ALLOWED["engine"]


def test_architecture_page_names_every_module() -> None:
    """ARCHITECTURE.md (linked from the README) says who owns what: every module is on it."""
    page = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for path in sorted(PACKAGE.iterdir()):
        if path.suffix == ".py" and path.name != "__init__.py":
            assert f"`{path.name}`" in page, f"ARCHITECTURE.md does not say what {path.name} owns"
        elif path.is_dir() and (path / "__init__.py").exists():
            assert f"`{path.name}/`" in page, f"ARCHITECTURE.md does not say what {path.name}/ owns"
    assert "[ARCHITECTURE.md](ARCHITECTURE.md)" in (PACKAGE.parent / "README.md").read_text()

