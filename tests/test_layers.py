"""The layers of mmsa_cli (issue 28): the stages meet only in the contract.

    8  cli.py                                   the `mmsa` group
    7  training/  onnx_export/  scoring/        the stages: never import each other
    6  runs.py                                  run folders (a trained model, rebuilt)
    5  models/  cli_options.py                  torch models; the CLI vocabulary (click)
    4  config.py  data/                         training's configs, the table layout; datasets
    3  flags.py  io/                            options declared once; the guarded I/O room
    2  contract/                                what two stages share; torch-free
    1  errors.py  registry.py  progress.py      the ground floor

Each stage's modules are imported in a fresh interpreter, which must then hold no module of
another stage (nor the CLI group above them); the contract's must hold neither torch nor
anything above the ground floor. benchmarks/import_graph.py reads the same graph statically
(function-level imports included): every import runs down a layer, and there is no cycle.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mmsa_cli"
sys.path.insert(0, str(ROOT / "benchmarks"))
import import_graph  # noqa: E402

STAGES = ("training", "onnx_export", "scoring")
LAYERS = {
    "errors.py": 1, "registry.py": 1, "progress.py": 1, "_moved.py": 1,
    "model_folder.py": 2, "outputs.py": 2,   # deprecation shims of moved modules (_moved.py)
    "contract/": 2,
    "flags.py": 3, "io/": 3,
    "config.py": 4, "data/": 4,
    "models/": 5, "cli_options.py": 5,
    "runs.py": 6,
    "training/": 7, "onnx_export/": 7, "scoring/": 7,
    "cli.py": 8,
}

_IMPORT_ALL = """
import importlib, json, sys
names = sys.argv[1:]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as exc:  # an optional extra this install lacks (never the stages' own code)
        failed[name] = str(exc)
print(json.dumps({"loaded": sorted(m for m in sys.modules if m == "torch" or m.startswith("mmsa_cli")),
                  "failed": failed}))
"""


def _modules(folder: str) -> list[str]:
    return sorted(import_graph.module_name(p, ROOT) for p in (PACKAGE / folder).rglob("*.py"))


def _import_all(names: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", _IMPORT_ALL, *names],
                            capture_output=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_loads_no_other_stage(stage):
    names = _modules(stage)
    report = _import_all(names)
    assert not report["failed"], report["failed"]
    others = [m for m in report["loaded"] if m.split(".")[1:2] and m.split(".")[1] in set(STAGES) - {stage}]
    assert not others, f"importing mmsa_cli.{stage} loaded {others}"
    assert "mmsa_cli.cli" not in report["loaded"]
    assert len([m for m in report["loaded"] if m.startswith(f"mmsa_cli.{stage}.")]) >= len(names) - 1  # real


def test_the_contract_loads_neither_torch_nor_a_layer_above_the_ground():
    report = _import_all(_modules("contract"))
    assert not report["failed"], report["failed"]
    assert "torch" not in report["loaded"]
    ground = {"mmsa_cli", "mmsa_cli.errors", "mmsa_cli.registry", "mmsa_cli.progress"}
    above = [m for m in report["loaded"] if m not in ground and not m.startswith("mmsa_cli.contract")]
    assert not above, above
    assert "mmsa_cli.contract.model_folder" in report["loaded"]  # the import really ran


def test_every_import_runs_down_a_layer_and_nothing_closes_a_cycle():
    edges = import_graph.module_edges(ROOT)
    pairs = import_graph.room_edges(edges)
    rooms = {import_graph.room_of(m) for m in import_graph.modules(ROOT)} - {"__init__.py"}
    assert rooms == set(LAYERS), f"rooms without a layer: {rooms - set(LAYERS)}; gone: {set(LAYERS) - rooms}"
    upward = [(a, b, why[0]) for (a, b), why in sorted(pairs.items()) if LAYERS[a] <= LAYERS[b]]
    assert not upward, "imports that do not run down a layer: " + "; ".join(f"{a} -> {b} ({x} -> {y})"
                                                                             for a, b, (x, y) in upward)
    assert import_graph.module_cycles(edges) == []
    assert len(pairs) > 30  # the graph was really read


def test_every_moved_module_still_hands_out_its_names_with_a_deprecation_warning():
    import importlib

    shims = [import_graph.module_name(p, ROOT) for p in PACKAGE.rglob("*.py")
             if "__getattr__ = moved(__name__" in p.read_text() and p.name != "_moved.py"]
    assert len(shims) >= 15, shims
    for name in shims:
        old = importlib.import_module(name)
        new = importlib.import_module(old.__getattr__.target)
        public = sorted(n for n in vars(new) if not n.startswith("_") and getattr(vars(new)[n], "__module__", "")
                        == new.__name__)
        assert public, name
        with pytest.warns(DeprecationWarning, match=f"{name} moved to {new.__name__}"):
            assert getattr(old, public[0]) is getattr(new, public[0])
        with pytest.raises(AttributeError, match="moved to"):
            getattr(old, "no_such_name")
