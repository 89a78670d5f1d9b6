"""mmsa: multimodal (tweet text + image) sentiment analysis.

Importing the package switches Hugging Face libraries to offline mode: no code path of
mmsa may reach the network (weights come from installed packages, caches or paths).
"""
import os

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.2.0"  # the one source: pyproject.toml reads it (tool.setuptools.dynamic)
# The name to `pip install`: "mmsa" on PyPI is an unrelated project; the command stays `mmsa`.
DISTRIBUTION = "mmsa-tweets"

# Class order used everywhere: label ids, probability columns, ONNX outputs.
LABELS = ("positive", "neutral", "negative")
