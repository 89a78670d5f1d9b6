"""The install split (issue 16): what each extra declares, and what the light paths import.

The base install (`pip install 'mmsa-tweets[cpu]'`) scores exported model folders without
torch or transformers; `mmsa --help` and every command's help import none of the heavy
libraries; image worker processes stay light; exactly one ONNX Runtime flavour per install.
.ci/light_install_check.sh proves the same in a fresh virtual environment.
"""
from __future__ import annotations

import itertools
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import mmsa_cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
TWEETS = SAMPLES / "tweets.parquet"
HEAVY = ("torch", "torchvision", "transformers", "onnxruntime", "onnx", "pandas", "sklearn", "matplotlib")
ORT_FLAVOURS = {"onnxruntime", "onnxruntime-gpu"}

try:
    import tomllib
except ImportError:  # Python 3.10: pip's vendored copy of the same parser
    from pip._vendor import tomli as tomllib


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """'onnxruntime-gpu[cuda,cudnn]>=1.20; marker' -> 'onnxruntime-gpu' (normalised)."""
    return re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _python(code: str, *args: str, stdin: bytes | None = None, flags: tuple[str, ...] = ()):
    return subprocess.run([sys.executable, *flags, "-c", code, *args], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=300)


# ---------------------------------------------------------------------------- the metadata

def test_distribution_name_and_one_version_source():
    project = _project()
    assert project["project"]["name"] == mmsa_cli.DISTRIBUTION == "mmsa-tweets"  # "mmsa" on PyPI is not ours
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mmsa_cli.__version__"}
    assert project["project"]["scripts"] == {"mmsa": "mmsa_cli.cli:main"}


def test_base_install_has_neither_torch_nor_an_onnxruntime():
    base = {_name(r) for r in _project()["project"]["dependencies"]}
    assert not base & {"torch", "torchvision", "transformers", "onnx", "pandas", *ORT_FLAVOURS}, base
    # What scoring imports, text normalization included (emoji) and the tokenizer without transformers.
    assert {"click", "numpy", "pyarrow", "pillow", "tokenizers", "emoji", "tqdm"} <= base


def test_each_extra_brings_at_most_one_onnxruntime_flavour():
    extras = {k: {_name(r) for r in v} for k, v in _project()["project"]["optional-dependencies"].items()}
    assert set(extras) == {"cpu", "gpu", "train", "ray", "test"}
    assert extras["cpu"] & ORT_FLAVOURS == {"onnxruntime"}
    assert extras["gpu"] & ORT_FLAVOURS == {"onnxruntime-gpu"}
    assert {"torch", "transformers", "onnx"} <= extras["train"]
    assert "transformers" not in extras["gpu"]  # scoring never needs it, on any device
    for name in ("train", "ray", "test"):
        assert not extras[name] & ORT_FLAVOURS, name
    # Every combination a user may ask for, short of naming both [cpu] and [gpu], resolves
    # (directly) to one flavour at most; .ci/light_install_check.sh checks the transitive
    # resolution of [train,gpu] and [train,cpu] with pip.
    others = [e for e in extras if e not in ("cpu", "gpu")]
    for size in range(len(extras) + 1):
        for combo in itertools.combinations(extras, size):
            if {"cpu", "gpu"} <= set(combo):
                continue
            flavours = set().union(*(extras[e] for e in combo)) & ORT_FLAVOURS
            assert len(flavours) <= 1, combo
    assert others  # the loop above covered combinations with the other extras


# ---------------------------------------------------------------------------- light imports

_HELP = """
import json, sys
from mmsa_cli.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


@pytest.mark.parametrize("command", ["", "score", "export", "train", "evaluate", "predict"])
def test_help_imports_no_heavy_library(command):
    args = [*command.split(), "--help"]
    result = _python(_HELP, *args)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    report = json.loads(out.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, report
    assert "Usage:" in out
    if not command:
        for name in ("train", "evaluate", "predict", "export", "score"):
            assert re.search(rf"^  {name} ", out, re.M), name


def test_version_names_the_distribution():
    result = _python(_HELP, "--version")
    assert result.stdout.decode().splitlines()[0] == f"mmsa {mmsa_cli.__version__} (mmsa-tweets)"
    assert mmsa_cli.__version__ == "0.2.0"


def test_image_worker_process_imports_no_heavy_library():
    """A real worker (`python -m mmsa_cli.scoring.images.workers`) prepares an image; -X importtime
    lists every module it imported."""
    from mmsa_cli.scoring.images.prepare import ImageSpec

    image = next((SAMPLES / "mvsa" / "data").glob("*.jpg"))
    spec = ImageSpec(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    feed = pickle.dumps((spec, None)) + pickle.dumps(([(image.name, str(image.parent))], 1.0, 0, None))
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "mmsa_cli.scoring.images.workers"], input=feed,
                            capture_output=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    (status, pixels, error), = pickle.loads(result.stdout)[0]
    assert (status, error, pixels.shape) == ("pixels", None, (64, 64, 3))
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "PIL" in imported and "mmsa_cli" in imported  # the log is real
    assert not imported & set(HEAVY), imported & set(HEAVY)


# ---------------------------------------------------------------------------- scoring without torch

# Run `mmsa` with some top-level packages made unimportable (sys.modules[name] = None makes
# both `import name` and importlib.util.find_spec(name) fail, as if it were not installed).
_WITHOUT = """
import sys
blocked = sys.argv[1].split(",")
for name in blocked:
    sys.modules[name] = None
from mmsa_cli.cli import main
try:
    main(sys.argv[2:])
finally:
    loaded = [m for m in sys.modules if m.split(".")[0] in blocked and sys.modules[m] is not None]
    assert not loaded, loaded
"""


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from scoring_helpers import make_model_folder

    return make_model_folder(tmp_path_factory.mktemp("install") / "ote", "ote", parity_rows=8)


def test_scoring_needs_neither_torch_nor_transformers(model_folder, tmp_path):
    from mmsa_cli.scoring import Scorer

    out = tmp_path / "scored.parquet"
    result = _python(_WITHOUT, "torch,torchvision,transformers", "score", str(TWEETS), "--model", str(model_folder),
                     "--out", str(out), "--device", "cpu", "--workers", "1", "--no-progress")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    scored = pq.read_table(out)
    expected = Scorer(model_folder, "cpu").score_batch(pq.read_table(TWEETS), image_root=TWEETS.parent)
    assert scored.num_rows == pq.read_metadata(TWEETS).num_rows == 68
    assert scored.column("label").to_pylist() == expected.column("label").to_pylist()
    for column in ("prob_positive", "prob_neutral", "prob_negative"):
        a, b = scored.column(column).to_pylist(), expected.column(column).to_pylist()
        assert all((x is None and y is None) or abs(x - y) < 1e-5 for x, y in zip(a, b)), column


def test_score_without_onnxruntime_says_which_extra(tmp_path):
    result = _python(_WITHOUT, "onnxruntime", "score", str(TWEETS), "--model", str(tmp_path), "--out",
                     str(tmp_path / "x.parquet"))
    assert result.returncode == 2, result.stderr.decode()
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert "install mmsa-tweets[cpu] (or [gpu] on a CUDA machine)" in lines[0], lines[0]
    assert not (tmp_path / "x.parquet").exists()
    assert _python(_WITHOUT, "onnxruntime", "score", "--help").returncode == 0  # help needs no extra


@pytest.mark.parametrize("command", ["train", "export"])
def test_train_and_export_without_the_train_extra_say_which_extra(command, tmp_path):
    args = {"train": ["--data", str(SAMPLES / "mvsa"), "--out", str(tmp_path / "run")],
            "export": ["--run", str(tmp_path), "--out", str(tmp_path / "model")]}[command]
    result = _python(_WITHOUT, "torch", command, *args)
    assert result.returncode == 2, result.stderr.decode()
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert "pip install 'mmsa-tweets[train,cpu]'" in lines[0], lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "model").exists()
