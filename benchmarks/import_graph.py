"""The import graph of mmsa_cli, read from the code (ast; nothing is imported): its rooms,
their layers, and every import that runs back up a layer or closes a cycle.

    python benchmarks/import_graph.py            # layers, edges, back edges, cycles
    python benchmarks/import_graph.py --edges    # and every room-to-room edge with its modules

A room is a top-level module (mmsa_cli/config.py) or a first-level package (mmsa_cli/scoring/).
An edge A -> B is any import in a module of A of a module of B, at the top of the file or
inside a function (a lazy import is still a dependency). A package's __init__ re-exporting its
own modules is no edge. Layers: the longest path down from a room over the edges (layer 1: a
room that imports no other room). An edge that closes a cycle cannot be layered: it is
reported as a back edge (the DFS back edges of the room graph, deterministic order).
tests/test_layers.py holds the same graph to the rules of the house.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "mmsa_cli"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The mmsa_cli modules an import statement names (`from . import x` names x if it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != PACKAGE:
        return []
    return [target] + [f"{target}.{a.name}" for a in node.names]


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def module_edges(root: Path) -> dict[str, set[str]]:
    """module -> the mmsa_cli modules it imports (names that are not modules are dropped)."""
    found = modules(root)
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in found.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in resolve(name, path.name == "__init__.py", node):
                    if target in found and target != name:
                        edges[name].add(target)
    return edges


def room_of(module: str) -> str:
    """mmsa_cli.scoring.engines.local -> scoring/; mmsa_cli.config -> config.py."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__.py"
    return parts[1] + ("/" if (ROOT / PACKAGE / parts[1]).is_dir() else ".py")


def room_edges(edges: dict[str, set[str]]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(room A, room B) -> the module pairs behind that edge. The package's own __init__
    (LABELS, the version) is the ground every room stands on: not a room of the graph."""
    out: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for a, targets in edges.items():
        for b in targets:
            ra, rb = room_of(a), room_of(b)
            if ra != rb and "__init__.py" not in (ra, rb):
                out[ra, rb].append((a, b))
    return out


def back_edges(rooms: list[str], pairs) -> list[tuple[str, str]]:
    """The DFS back edges of the room graph (rooms and neighbours visited in sorted order)."""
    graph = defaultdict(list)
    for a, b in sorted(pairs):
        graph[a].append(b)
    state, back = {}, []

    def visit(room: str) -> None:
        state[room] = "open"
        for nxt in graph[room]:
            if state.get(nxt) == "open":
                back.append((room, nxt))
            elif nxt not in state:
                visit(nxt)
        state[room] = "done"

    for room in rooms:
        if room not in state:
            visit(room)
    return back


def layers(rooms: list[str], pairs, back: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path down over the edges that are not back edges; 1 = imports no room."""
    down = defaultdict(set)
    for a, b in pairs:
        if (a, b) not in back:
            down[a].add(b)
    memo: dict[str, int] = {}

    def floor(room: str) -> int:
        if room not in memo:
            memo[room] = 1 + max((floor(b) for b in down[room]), default=0)
        return memo[room]

    return {room: floor(room) for room in rooms}


def module_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of two or more modules (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            strong(v)
    return out


def report(root: Path, show_edges: bool = False) -> str:
    edges = module_edges(root)
    pairs = room_edges(edges)
    rooms = sorted({room_of(m) for m in modules(root)} - {"__init__.py"})
    back = back_edges(rooms, pairs)
    floor = layers(rooms, pairs, back)
    lines = [f"{len(rooms)} rooms, {len(pairs)} room edges, {sum(len(v) for v in edges.values())} module edges; "
             f"{max(floor.values())} layers; {len(back)} back edges; {len(module_cycles(edges))} module cycles"]
    for level in sorted(set(floor.values()), reverse=True):
        lines.append(f"  layer {level}: " + ", ".join(r for r in rooms if floor[r] == level))
    for a, b in back:
        lines.append(f"  back edge {a} -> {b}: " + "; ".join(f"{x} -> {y}" for x, y in sorted(pairs[a, b])))
    for cycle in module_cycles(edges):
        lines.append("  module cycle: " + ", ".join(cycle))
    if show_edges:
        for (a, b), why in sorted(pairs.items()):
            lines.append(f"  {a} -> {b} ({len(why)})")
    return "\n".join(lines)


ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    print(report(ROOT, "--edges" in sys.argv[1:]))
