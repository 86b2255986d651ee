"""vistr_core reads top-down: floors, from the bottom, and no module imports a floor above its own.

Every import counts: at the top of a module, inside a function (a lazy import is still a
dependency) and under ``TYPE_CHECKING``. Within a floor, packages may use each other, but no two
modules may import each other, directly or round a longer circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "vistr_core"

#: Bottom to top; a module belongs to the floor of its longest listed prefix.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",  # plain Python: errors, settings, atomic files, progress callbacks
        (
            "vistr_core.errors",
            "vistr_core.version",
            "vistr_core.progress",
            "vistr_core.atomic",
            "vistr_core.categories",
            "vistr_core.config",
            "vistr_core.presets",
            # checkpoint reading/writing, below model/ and engine/
            "vistr_core.checkpoint_io",
        ),
    ),
    ("ops", ("vistr_core.ops",)),  # pure tensor / mask functions
    ("data, model, metric", ("vistr_core.data", "vistr_core.model", "vistr_core.eval")),
    ("training", ("vistr_core.engine", "vistr_core.losses", "vistr_core.matcher")),
    ("rendering, review", ("vistr_core.render", "vistr_core.review")),
    ("inference", ("vistr_core.inference",)),
    ("public API", ("vistr_core",)),  # the package root re-exports lazily
]

#: (importer, imported) pairs allowed across floors while they last, and why.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every vistr_core module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import sub` imports the submodule pkg.sub when there is one (pkg itself is
            # then the importer's own package or one it already needs for pkg.sub)
            subs = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t for t in subs if t in known] or [base]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def floor_of(name: str) -> int:
    best, level = -1, -1
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    return level


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_is_on_a_floor():
    lost = [name for name in all_modules() if floor_of(name) < 0 or FLOORS[floor_of(name)][0] == "public API"]
    lost = [name for name in lost if name != "vistr_core"]
    assert not lost, f"modules on no floor (add them to FLOORS in tests/test_layers.py): {lost}"


def test_no_module_imports_a_higher_floor():
    upward = [
        f"{src} ({FLOORS[floor_of(src)][0]}) imports {dst} ({FLOORS[floor_of(dst)][0]})"
        for src, targets in graph().items()
        for dst in sorted(targets)
        if floor_of(dst) > floor_of(src) and (src, dst) not in KNOWN_EXCEPTIONS
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path):
    """The walk is not blind: a function-level and a TYPE_CHECKING import are both edges."""
    edges = graph()
    assert "vistr_core.model.loading" in edges["vistr_core"]  # lazy, inside load_model()
    assert "vistr_core.engine.run_state" in edges["vistr_core.engine.saving"]  # TYPE_CHECKING
    assert "vistr_core.data.validate" in edges["vistr_core.data.ytvis"]
    assert floor_of("vistr_core.inference.split") > floor_of("vistr_core.engine.trainer")
