"""The layers of kiosk/ point one way, checked on every import statement in the source.

Function-level and TYPE_CHECKING imports count too: a cycle hidden inside a function is still a
cycle a reader has to untangle, and an import behind TYPE_CHECKING still says the lower layer
knows the upper one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("kiosk", "db", "calibration")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if "migrations" not in p.parts}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import names: the longest known prefix (`from a.b import c` may name a.b.c)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> Iterator[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                yield target


GRAPH = {module: set(_imports(module)) for module in MODULES}


def _cycles() -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def _violations(source_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module == source_prefix or module.startswith(source_prefix + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )


def test_the_scan_sees_the_imports_it_checks() -> None:
    """Guards the checks below against passing on an empty graph."""
    assert "kiosk.door.service" in GRAPH and "kiosk.door.frame_loop" in GRAPH["kiosk.door.service"]
    assert "db.models" in GRAPH["kiosk.door.access_log"]


def test_no_import_cycles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("db", ("kiosk", "calibration")),
        ("kiosk.door", ("calibration", "kiosk.training", "kiosk.ui", "kiosk.commands", "kiosk.admin")),
        ("kiosk.recognition", ("calibration", "kiosk.training", "kiosk.door", "kiosk.ui", "kiosk.commands", "kiosk.admin")),
        ("kiosk.training", ("calibration", "kiosk.door", "kiosk.ui", "kiosk.commands", "kiosk.admin")),
        ("kiosk.vision", ("kiosk.recognition", "kiosk.training", "kiosk.door", "kiosk.storage", "kiosk.admin", "kiosk.ui", "kiosk.commands", "calibration", "kiosk.context")),
        ("kiosk.storage", ("kiosk.recognition", "kiosk.training", "kiosk.door", "kiosk.admin", "kiosk.ui", "kiosk.commands", "calibration")),
        ("kiosk.admin", ("kiosk.ui", "kiosk.commands")),
        ("kiosk.liveness", ("calibration", "kiosk.training", "kiosk.door", "kiosk.ui", "kiosk.commands", "kiosk.admin", "kiosk.integrations", "kiosk.site")),
        ("kiosk.integrations", ("calibration", "kiosk.training", "kiosk.ui", "kiosk.commands", "kiosk.admin", "kiosk.site")),
        ("kiosk.site", ("calibration", "kiosk.training", "kiosk.ui", "kiosk.commands", "kiosk.admin", "kiosk.integrations")),
    ],
)
def test_layers_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_screens_do_not_import_the_app_or_commands() -> None:
    """Screens type their app as a Protocol; the app imports the screens, never the reverse."""
    assert _violations("kiosk.ui", ("kiosk.commands",)) == []
    screens = [m for m in GRAPH if m.startswith("kiosk.ui.") and m.endswith("_screen")]
    assert screens and [f"{s} -> kiosk.ui.admin_app" for s in screens if "kiosk.ui.admin_app" in GRAPH[s]] == []


def test_few_modules_stay_flat_in_kiosk() -> None:
    flat = [p.name for p in (REPO / "kiosk").glob("*.py")]
    assert len(flat) <= 12, flat
