"""--text-normalization tweet end to end: a tiny run trained with it records it, the exported
model folder carries it, and evaluate/predict, scoring and the PyTorch model all see the
same normalized text."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from mmsa_cli.training.batches import pad_tokens, token_lists
from mmsa_cli.config import EncoderWeights, ModelConfig, TrainConfig
from mmsa_cli.data import Example, load_image, preprocess_image
from mmsa_cli.contract.tweet_text import normalize_text
from mmsa_cli.errors import ConfigError
from mmsa_cli.contract.rows import PROB_COLUMNS
from mmsa_cli.scoring.evaluate import predict_examples
from mmsa_cli.contract.model_folder import load_model_folder, write_checksums
from mmsa_cli.onnx_export import export_run, verify_model_folder
from mmsa_cli.runs import load_run
from mmsa_cli.scoring import Scorer
from mmsa_cli.contract.tokenizer import BatchTokenizer
from mmsa_cli.training.train import TrainSource, train

MVSA = Path(__file__).resolve().parents[1] / "samples" / "mvsa"
TINY = dict(text_encoder="tiny-bert", image_encoder="tiny-cnn")
FAST = dict(batch_size=16, lr=1e-3, head_lr=3e-3, freeze="none", device="cpu", seed=42)
RANDOM = EncoderWeights(random_weights=True)  # tiny encoders have no pretrained weights
TEXTS = ["RT @bob_99: #HappyFriday \U0001F602\U0001F602\U0001F602 so good :) http://t.co/AbC123xyz",
         "Worst. Day. Ever &amp; still waiting @TrainCo #fail \U0001F621",
         "plain words only"]


@pytest.fixture(scope="module")
def tweet_model(tmp_path_factory) -> tuple[Path, Path]:
    """naive-cat (text and image) trained one short epoch with tweet normalization, exported."""
    root = tmp_path_factory.mktemp("tweet-norm")
    train(TrainSource(str(MVSA)), root / "run", ["naive-cat"],
          ModelConfig(fusion="naive-cat", text_normalization="tweet", **TINY),
          TrainConfig(epochs=1, max_train_examples=48, **FAST), weights=RANDOM)
    export_run(root / "run", root / "model", device="cpu", max_parity_rows=16)
    return root / "run", root / "model"


def _images() -> list[Path]:
    return sorted(MVSA.glob("data/*.jpg"))[:len(TEXTS)]


def test_the_choice_travels_with_the_run_and_the_model(tweet_model):
    run_dir, model_dir = tweet_model
    assert json.loads((run_dir / "config.json").read_text())["model"]["text_normalization"] == "tweet"
    assert load_run(run_dir).model_cfg.text_normalization == "tweet"
    assert json.loads((model_dir / "manifest.json").read_text())["text_normalization"] == "tweet"
    verify_model_folder(model_dir)  # manifest.json == the copy in the ONNX metadata


def test_scorer_tokenizes_the_normalized_text(tweet_model):
    _, model_dir = tweet_model
    scorer = Scorer(model_dir, "cpu")
    ids, _ = scorer._tokenize(TEXTS)
    tok, length = scorer.folder.load_hf_tokenizer(), scorer.manifest.max_length
    expected = tok([normalize_text(t, "tweet") for t in TEXTS], truncation=True, max_length=length,
                   padding="max_length", return_tensors="np")["input_ids"]
    raw = tok(TEXTS, truncation=True, max_length=length, padding="max_length", return_tensors="np")["input_ids"]
    np.testing.assert_array_equal(ids, expected)
    assert (ids[:2] != raw[:2]).any(axis=1).all()  # the tweet rows really changed
    np.testing.assert_array_equal(ids[2], raw[2])


def test_scoring_evaluate_and_pytorch_agree_on_normalized_text(tweet_model):
    """ONNX scoring and `mmsa predict` of the run == the PyTorch model fed the normalized text
    by hand; the raw text gives other probabilities (so the check can fail)."""
    run_dir, model_dir = tweet_model
    images = _images()
    run = load_run(run_dir)
    model = run.model.eval()
    tok = model.text_encoder.tokenizer
    pixels = torch.from_numpy(np.stack([preprocess_image(load_image(p, draft_size=run.image_size), run.image_size,
                                                         run.mean, run.std) for p in images]))

    def torch_probs(texts: list[str]) -> np.ndarray:
        ids, mask = pad_tokens(token_lists(tok, texts, run.model_cfg.max_length, normalization="none"), tok.pad_token_id)
        with torch.no_grad():
            return model(ids, mask, pixels).float().softmax(-1).numpy()

    by_hand = torch_probs([normalize_text(t, "tweet") for t in TEXTS])
    scored = Scorer(model_dir, "cpu").score_batch(
        pa.table({"text": TEXTS, "image": [str(p) for p in images]}), image_root=MVSA)
    np.testing.assert_allclose(np.stack([scored.column(c).to_numpy() for c in PROB_COLUMNS], 1), by_hand, atol=1e-4)
    predicted = predict_examples(run, [Example(str(i), t, p, None) for i, (t, p) in enumerate(zip(TEXTS, images))],
                                 device="cpu")
    np.testing.assert_allclose(predicted[list(PROB_COLUMNS)].to_numpy(), by_hand, atol=1e-5)
    assert np.abs(torch_probs(TEXTS)[:2] - by_hand[:2]).max() > 1e-6


def test_model_folders_without_the_field_load_as_none(tweet_model, tmp_path):
    """A folder exported before text_normalization existed is read as 'none'."""
    _, model_dir = tweet_model
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["text_normalization"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    write_checksums(old)  # the manifest edited on purpose: seal it again
    assert load_model_folder(old).manifest.text_normalization == "none"


def test_unknown_normalization_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match=r"--text-normalization 'emoji' is not one of 'none', 'tweet'"):
        train(TrainSource(str(MVSA)), tmp_path / "run", ["text-only"],
              ModelConfig(fusion="text-only", text_normalization="emoji", **TINY),
              TrainConfig(epochs=1, max_train_examples=16, **FAST), weights=RANDOM)
    with pytest.raises(ConfigError, match="'emoji'"):
        BatchTokenizer(None, 8, "emoji")
