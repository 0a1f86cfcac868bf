"""The layers of the package, read from the source with `ast` (nothing is imported): no import cycles among the
modules of `livekit_mcp`, no lower layer importing an upper one, and `bench/` and `realkit/` not importing `tests/`.
docs/architecture.md draws the layers these tests hold.

Every import is one of three kinds: `module` (at module level, or in a class body: it runs when the module is
imported), `deferred` (inside a function: it runs at the first call) and `typing` (under `if TYPE_CHECKING:`: it
never runs). A cycle of module-level imports breaks at import time; a deferred import that closes a cycle is the
same circle, only hidden; a typing import that closes one is a circle of types.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server"
PACKAGE = "livekit_mcp"

Kind = Literal["module", "deferred", "typing"]
EVERY_KIND: frozenset[Kind] = frozenset({"module", "deferred", "typing"})

ALLOWED_CYCLES: frozenset[frozenset[str]] = frozenset()
"""Cycles of imports of any kind that may exist today, each exactly as listed; one that is gone must leave the list."""

TYPE_ONLY_CYCLES: frozenset[frozenset[str]] = frozenset(
    {
        # The sandbox's State holds the SIP, egress and ingress stores and checks fault names against the Twirp
        # method table; the rules of those services and of the table take the State as an argument, annotated
        # under TYPE_CHECKING (and the demo data, seeded by State through a deferred import, does the same).
        frozenset(
            {
                "livekit_mcp.sandbox._egress",
                "livekit_mcp.sandbox._ingress",
                "livekit_mcp.sandbox._seed",
                "livekit_mcp.sandbox._services",
                "livekit_mcp.sandbox._sip",
                "livekit_mcp.sandbox._state",
            }
        ),
    }
)
"""Cycles that only `if TYPE_CHECKING:` imports close (nothing imported at run time goes round), kept knowingly."""

SANDBOX_MAY_IMPORT: frozenset[str] = frozenset()
"""Modules of `livekit_mcp` outside the sandbox that the sandbox may import: none (it is LiveKit, not a client)."""

TOOLS_AND_APP = (
    "livekit_mcp.tools",
    "livekit_mcp.resources",
    "livekit_mcp.app",
    "livekit_mcp.cli",
    "livekit_mcp.__main__",
    "livekit_mcp.demo",
    "livekit_mcp.check",
    "livekit_mcp.slack",
)
"""The upper layers: the tools (and resources) and what builds, serves or drives the server."""

GUARDRAILS = ("livekit_mcp.confirm", "livekit_mcp.audit", "livekit_mcp.projects")

MUST_NOT_IMPORT: Mapping[str, tuple[str, ...]] = {
    "livekit_mcp.errors": TOOLS_AND_APP,
    "livekit_mcp.models": TOOLS_AND_APP,
    "livekit_mcp.config": TOOLS_AND_APP,
    "livekit_mcp.policy": TOOLS_AND_APP,
    "livekit_mcp.store": TOOLS_AND_APP,
    "livekit_mcp.livekit_backend": TOOLS_AND_APP + GUARDRAILS,
    "livekit_mcp.confirm": TOOLS_AND_APP,
    "livekit_mcp.audit": TOOLS_AND_APP,
    "livekit_mcp.projects": TOOLS_AND_APP,
}
"""A lower layer (the module and its submodules) and the upper ones it must not import, whatever the kind."""


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    kind: Kind
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.kind} import, line {self.line})"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST, kind: Kind) -> Iterator[tuple[ast.Import | ast.ImportFrom, Kind]]:
    """Every import under `node`, with the kind it has there."""
    for child in ast.iter_child_nodes(node):
        yield from _imports_in(child, kind)


def _imports_in(node: ast.AST, kind: Kind) -> Iterator[tuple[ast.Import | ast.ImportFrom, Kind]]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, kind
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        yield from _import_nodes(node, "typing" if kind == "typing" else "deferred")
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for statement in node.body:
            yield from _imports_in(statement, "typing")
        for statement in node.orelse:
            yield from _imports_in(statement, kind)
    else:
        yield from _import_nodes(node, kind)


def _module_name(path: Path, base: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def imports_of(path: Path, base: Path, known: frozenset[str] = frozenset()) -> list[Import]:
    """The imports of the module at `path` (named from `base`), by the full name of what each imports: a module of
    `known` where `from X import name` names one, otherwise X itself."""
    name, is_package = _module_name(path, base)
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node, kind in _import_nodes(ast.parse(path.read_text(), str(path)), "module"):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            origin = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*anchor, origin] if origin else anchor)
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        found += [Import(name, target, kind, node.lineno) for target in targets]
    return found


@cache
def package_imports() -> tuple[frozenset[str], tuple[Import, ...]]:
    """The modules of the package, and their imports of one another (resolved to the module imported)."""
    paths = sorted((SERVER / PACKAGE).rglob("*.py"))
    modules = frozenset(_module_name(path, SERVER)[0] for path in paths)

    def within(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    edges = []
    for path in paths:
        for found in imports_of(path, SERVER, modules):
            target = within(found.target)
            if target is not None and target != found.source:
                edges.append(Import(found.source, target, found.kind, found.line))
    return modules, tuple(edges)


def cycles(modules: Iterable[str], edges: Iterable[Import]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle of imports or several."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for edge in edges:
        graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return found


def _described(component: frozenset[str], edges: Iterable[Import]) -> str:
    inside = sorted({str(e) for e in edges if e.source in component and e.target in component})
    return "{" + ", ".join(sorted(component)) + "}:\n    " + "\n    ".join(inside)


def _cycles_of(kinds: frozenset[Kind]) -> tuple[list[frozenset[str]], list[Import]]:
    modules, edges = package_imports()
    counted = [edge for edge in edges if edge.kind in kinds]
    return cycles(modules, counted), counted


def test_the_module_level_imports_of_the_package_form_no_cycle() -> None:
    found, edges = _cycles_of(frozenset({"module"}))
    assert not found, "import cycles:\n" + "\n".join(_described(c, edges) for c in found)


def test_no_cycle_hides_behind_an_import_inside_a_function() -> None:
    found, edges = _cycles_of(frozenset({"module", "deferred"}))
    assert not found, "import cycles:\n" + "\n".join(_described(c, edges) for c in found)


def test_imports_of_any_kind_form_only_the_listed_cycles() -> None:
    found, edges = _cycles_of(EVERY_KIND)
    unexpected = [c for c in found if c not in ALLOWED_CYCLES | TYPE_ONLY_CYCLES]
    assert not unexpected, "import cycles (TYPE_CHECKING imports counted):\n" + "\n".join(
        _described(c, edges) for c in unexpected
    )
    gone = (ALLOWED_CYCLES | TYPE_ONLY_CYCLES) - set(found)
    assert not gone, f"no longer a cycle, remove it from its list: {[sorted(c) for c in gone]}"


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_sandbox_imports_nothing_of_the_package_outside_it() -> None:
    _, edges = package_imports()
    outside = [
        str(e)
        for e in edges
        if _under(e.source, "livekit_mcp.sandbox")
        and not _under(e.target, "livekit_mcp.sandbox")
        and e.target not in SANDBOX_MAY_IMPORT
    ]
    assert not outside


@pytest.mark.parametrize("lower", sorted(MUST_NOT_IMPORT))
def test_a_lower_layer_imports_no_upper_one(lower: str) -> None:
    _, edges = package_imports()
    upward = [
        str(e)
        for e in edges
        if _under(e.source, lower) and any(_under(e.target, upper) for upper in MUST_NOT_IMPORT[lower])
    ]
    assert not upward


def _imports_under(directory: str) -> list[Import]:
    return [found for path in sorted((ROOT / directory).rglob("*.py")) for found in imports_of(path, ROOT)]


@pytest.mark.parametrize(
    ("directory", "forbidden"),
    [("bench", ("tests",)), ("realkit", ("tests", "bench")), ("server", ("tests", "bench", "realkit"))],
)
def test_bench_and_realkit_import_no_tests_and_the_package_none_of_them(
    directory: str, forbidden: tuple[str, ...]
) -> None:
    wrong = [str(e) for e in _imports_under(directory) if any(_under(e.target, f) for f in forbidden)]
    assert not wrong


def test_realkit_does_not_ship() -> None:
    targets = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]
    assert targets["wheel"]["packages"] == ["server/livekit_mcp"]
    assert not [path for path in targets["sdist"]["include"] if path.split("/")[0] in ("realkit", "tests", "bench")]


def test_the_reading_sees_each_kind_of_import(tmp_path: Path) -> None:
    """The reading above, on a module of every shape it meets, and the cycles it finds."""
    module = tmp_path / "pkg" / "sub" / "m.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from __future__ import annotations\n"
        "import typing\n"
        "from typing import TYPE_CHECKING\n"
        "from . import a\n"
        "from .b import thing\n"
        "if TYPE_CHECKING:\n"
        "    from .c import C\n"
        "else:\n"
        "    import pkg.d\n"
        "if typing.TYPE_CHECKING:\n"
        "    from ..e import E\n"
        "class K:\n"
        "    from .f import F\n"
        "    def method(self) -> None:\n"
        "        from .g import G\n"
        "try:\n"
        "    import pkg.h\n"
        "except ImportError:\n"
        "    pass\n"
        "async def run() -> None:\n"
        "    import pkg.i\n"
    )
    found = imports_of(module, tmp_path, frozenset({"pkg.sub.a"}))
    assert [(i.target, i.kind) for i in found if i.target not in ("__future__", "typing")] == [
        ("pkg.sub.a", "module"),
        ("pkg.sub.b", "module"),
        ("pkg.sub.c", "typing"),
        ("pkg.d", "module"),
        ("pkg.e", "typing"),
        ("pkg.sub.f", "module"),
        ("pkg.sub.g", "deferred"),
        ("pkg.h", "module"),
        ("pkg.i", "deferred"),
    ]
    loop = [Import("a", "b", "module", 1), Import("b", "c", "module", 1), Import("c", "a", "typing", 1)]
    assert cycles(["a", "b", "c", "d"], loop) == [frozenset({"a", "b", "c"})]
    assert cycles(["a", "b", "c", "d"], loop[:2]) == []
