"""Training on the synthetic samples with tiny random encoders: it learns, writes a complete
run folder that rebuilds alone, splits deterministically, compares fusions, skips bad images.

Each training happens once per session (session-scoped fixtures) and is shared by the checks.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from mmsa_cli import LABELS
from mmsa_cli.config import EncoderWeights, ModelConfig, TrainConfig
from mmsa_cli.data import load_examples, stratified_split
from mmsa_cli.errors import ConfigError, DataError
from mmsa_cli.runs import load_run
from mmsa_cli.training.loop import fit
from mmsa_cli.training.objectives import class_weights, training_loss
from mmsa_cli.training.prepared import prepare, with_split
from mmsa_cli.training.train import TrainSource, train

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MVSA = SAMPLES / "mvsa"
RUN_FILES = ("config.json", "labels.json", "text_encoder/config.json", "split.csv", "model.safetensors",
             "metrics.json", "confusion_matrix.png", "curves.png")

# Settings that make the tiny random encoders learn the samples fast and reliably: train the
# encoders too (there is nothing pretrained to keep) at a high learning rate. naive-cat reaches
# 0.73-0.80 validation accuracy within 5-6 epochs for seeds 0-7 and 42 (majority class: 0.50).
TINY = dict(text_encoder="tiny-bert", image_encoder="tiny-cnn")
FAST = dict(batch_size=16, lr=1e-3, head_lr=3e-3, freeze="none", device="cpu", seed=42)
RANDOM = EncoderWeights(random_weights=True)  # tiny encoders have no pretrained weights


def read_split_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """naive-cat on the MVSA folder, 6 epochs (early stopping may end it sooner)."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    [result] = train(TrainSource(str(MVSA)), out, ["naive-cat"], ModelConfig(fusion="naive-cat", **TINY),
                     TrainConfig(epochs=6, patience=3, **FAST), weights=RANDOM)
    return out, result


@pytest.fixture(scope="session")
def table_run(tmp_path_factory):
    """text-only on samples/train.parquet (table layout, same rows as the MVSA folder)."""
    out = tmp_path_factory.mktemp("table") / "run"
    [result] = train(TrainSource(str(SAMPLES / "train.parquet")), out, ["text-only"],
                     ModelConfig(fusion="text-only", **TINY), TrainConfig(epochs=2, **FAST), weights=RANDOM)
    return out, result


@pytest.fixture(scope="session")
def comparison_run(tmp_path_factory):
    """Several fusions in one call, as `--fusion all` does: shared split, one folder each."""
    out = tmp_path_factory.mktemp("compare") / "run"
    results = train(TrainSource(str(MVSA)), out, ["text-only", "image-only"], ModelConfig(**TINY),
                    TrainConfig(epochs=1, max_train_examples=64, **FAST), weights=RANDOM)
    return out, results


@pytest.fixture(scope="session")
def broken_mvsa(tmp_path_factory):
    """A copy of samples/mvsa with one labelled image truncated and one deleted."""
    root = tmp_path_factory.mktemp("broken") / "mvsa"
    shutil.copytree(MVSA, root)
    lines = (root / "train.txt").read_text().split()[1:]
    corrupt, missing = lines[0].split(",")[0], lines[1].split(",")[0]
    image = root / "data" / f"{corrupt}.jpg"
    image.write_bytes(image.read_bytes()[:300])  # header intact, pixel data cut off
    (root / "data" / f"{missing}.jpg").unlink()
    return root, corrupt, missing


def tiny_model(fusion: str):
    from mmsa_cli.models import create_model

    torch.manual_seed(0)
    return create_model(ModelConfig(fusion=fusion, **TINY), pretrained=False)


def fit_on_samples(model, cfg: TrainConfig, out: Path, keep_tokens: bool = False):
    """prepare() + fit() on samples/mvsa's default split: (examples, the split's data, fit's result)."""
    examples = load_examples(MVSA)
    data = prepare(examples, model, cfg, torch.device("cpu"), keep_tokens=keep_tokens)
    data = with_split(data, *stratified_split([e.label for e in examples], cfg.val_fraction, cfg.seed), cfg)
    return examples, data, fit(model, data, cfg, out, torch.device("cpu"), "samples/mvsa")


# --------------------------------------------------------------------------- smoke run


def test_smoke_run_learns(smoke_run):
    _, result = smoke_run
    assert result["fusion"] == "naive-cat"
    assert result["train_rows"] == 240 and result["val_rows"] == 60 and result["skipped_rows"] == 0
    # majority class 0.50, chance 0.33; the tiny models reach ~0.75
    assert result["validation"]["accuracy"] >= 0.6, result["history"]
    assert result["validation"]["n"] == 60
    assert 1 <= result["best_epoch"] <= result["epochs_run"] <= 6


def test_smoke_run_folder_contents(smoke_run):
    out, result = smoke_run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    assert (out / "skipped.csv").read_text().strip() == "guid,image,error"
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == list(LABELS)
    assert config["model"]["fusion"] == "naive-cat"
    assert config["model"]["text_encoder"] == "tiny-bert" and config["model"]["image_encoder"] == "tiny-cnn"
    assert config["train"]["freeze"] == "none" and config["train"]["seed"] == 42
    assert config["image"]["size"] == 64
    assert json.loads((out / "labels.json").read_text()) == {name: i for i, name in enumerate(LABELS)}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"] == result["validation"]
    assert len(metrics["history"]) == result["epochs_run"]
    for png in ("confusion_matrix.png", "curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_run_reproduces_validation_metrics(smoke_run):
    """The rebuilt model (no pretrained weights) predicts exactly what training measured."""
    from mmsa_cli.scoring.evaluate import evaluate_examples

    out, result = smoke_run
    run = load_run(out)
    val_guids = {r["guid"] for r in read_split_csv(out / "split.csv") if r["split"] == "val"}
    val = [e for e in load_examples(MVSA) if e.guid in val_guids]
    metrics, _ = evaluate_examples(run, val, device="cpu")
    assert metrics["confusion_matrix"] == result["validation"]["confusion_matrix"]
    assert metrics["accuracy"] == result["validation"]["accuracy"]


def test_old_config_json_still_loads(smoke_run, tmp_path):
    """Run folders written before the options were renamed (encoder_lr, num_workers,
    cache_image_features; no "weights" section) load with today's names."""
    out, _ = smoke_run
    old = tmp_path / "old-run"
    shutil.copytree(out, old)
    config = json.loads((old / "config.json").read_text())
    train_cfg = config["train"]
    train_cfg["encoder_lr"] = train_cfg.pop("lr")
    train_cfg["num_workers"] = train_cfg.pop("workers")
    train_cfg["cache_image_features"] = not train_cfg.pop("reencode_images")
    del config["weights"]
    (old / "config.json").write_text(json.dumps(config))
    run = load_run(old)
    assert run.train_cfg == load_run(out).train_cfg
    assert run.train_cfg.lr == FAST["lr"] and run.train_cfg.reencode_images is False


def test_training_quiets_the_transformers_loading_bar(smoke_run):
    from transformers.utils import logging as hf_logging

    assert not hf_logging.is_progress_bar_enabled()


def test_log_progress_never_repeats_the_last_line(capsys):
    import math

    from mmsa_cli.progress import LogProgress

    list(LogProgress(range(3), "epochs", None, "epoch", every_s=0.0))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["epochs: 1/3 epoch", "epochs: 2/3 epoch", "epochs: 3/3 epoch"]
    list(LogProgress(range(3), "epochs", None, "epoch", every_s=math.inf))  # the caller prints its own lines
    assert capsys.readouterr().err == ""


def test_interrupted_training_keeps_the_old_run_and_leaves_nothing(tmp_path, monkeypatch):
    """--overwrite replaces the old run only once training succeeded; an interruption (or any
    failure) part way leaves the old folder as it was and no staging folder."""
    import mmsa_cli.training.train as run_module

    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("the previous run")

    def interrupted(*args, **kwargs):
        assert any(p.name.startswith(".run.partial") for p in tmp_path.iterdir())  # training happens aside
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(TrainSource(str(MVSA)), out, ["text-only"], ModelConfig(**TINY),
              TrainConfig(epochs=1, **(FAST | {"freeze": "both"})), weights=RANDOM, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_existing_run_folder_is_refused_before_any_work(smoke_run, tmp_path):
    from mmsa_cli.errors import OutputExistsError

    out, _ = smoke_run
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(OutputExistsError, match="--overwrite") as err:
        train(TrainSource(str(MVSA)), out, ["naive-cat"], ModelConfig(**TINY), TrainConfig(epochs=1, **FAST),
              weights=RANDOM)
    assert err.value.exit_code == 4
    assert sorted(p.name for p in out.iterdir()) == before


def test_load_run_gives_identical_probabilities(tmp_path):
    """prepare() + fit() for one epoch (so the saved weights are the final ones), through the
    frozen-image feature cache with a token-using fusion, then load_run on the same batch."""
    from mmsa_cli.training.batches import ImageDataset, pad_tokens, token_lists

    model = tiny_model("hstec")
    cfg = TrainConfig(epochs=1, max_train_examples=48, **(FAST | {"freeze": "image"}))
    examples, data, _ = fit_on_samples(model, cfg, tmp_path, keep_tokens=True)
    assert data.features is not None and data.features.tokens is not None  # the cache was used
    assert len(data.train_idx) == 48 and len(data.val_idx) == 60

    batch = examples[:5]
    tok = model.text_encoder.tokenizer
    ids, mask = pad_tokens(token_lists(tok, [e.text for e in batch], 64, normalization="none"), tok.pad_token_id)
    images = ImageDataset([e.image_path for e in batch], dataclasses.replace(model.inputs, image_size=64))
    pixels = torch.stack([torch.from_numpy(images[i][1]) for i in range(len(batch))])
    run = load_run(tmp_path)
    assert type(run.model.fusion) is type(model.fusion)
    with torch.no_grad():
        trained = model.eval()(ids, mask, pixels).softmax(-1)
        rebuilt = run.model(ids, mask, pixels).softmax(-1)
    torch.testing.assert_close(rebuilt, trained, atol=1e-6, rtol=0)


def test_image_train_stages_fine_tunes_only_the_last_stages(tmp_path):
    """--freeze none --image-train-stages 1 on tiny-cnn (3 stages): the last stage learns; the
    first two keep their weights and their BatchNorm statistics; the text encoder learns."""
    model = tiny_model("naive-cat")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_on_samples(model, TrainConfig(epochs=1, max_train_examples=48, image_train_stages=1, **FAST), tmp_path)

    after = model.state_dict()
    changed = lambda prefix: [k for k in before  # noqa: E731
                              if k.startswith(prefix) and not torch.equal(before[k], after[k])]
    # tiny-cnn's stages are features[0:3], [3:6], [6:9]: conv, BatchNorm (weights and running stats), ReLU
    assert changed("image_encoder.net.features.0.") == changed("image_encoder.net.features.1.") == []
    assert changed("image_encoder.net.features.3.") == changed("image_encoder.net.features.4.") == []
    assert "image_encoder.net.features.6.weight" in changed("image_encoder.net.features.6.")
    assert "image_encoder.net.features.7.running_mean" in changed("image_encoder.net.features.7.")
    assert changed("text_encoder.")
    assert json.loads((tmp_path / "config.json").read_text())["train"]["image_train_stages"] == 1


@pytest.mark.parametrize("encoder", ["tiny-bert", "tiny-mpnet"])
def test_text_train_layers_fine_tunes_only_the_top_layers(tmp_path, tiny_mpnet_folder, encoder):
    """--text-train-layers 1 on a 2-layer encoder: the top layer learns; the embeddings, the layer
    below and MPNet's shared relative-position bias keep their weights; the fixed parts carry no
    gradient; the fusion learns."""
    from mmsa_cli.models import create_model

    name = str(tiny_mpnet_folder) if encoder == "tiny-mpnet" else encoder
    torch.manual_seed(0)
    model = create_model(ModelConfig(fusion="naive-cat", text_encoder=name, image_encoder="tiny-cnn"), pretrained=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=1, max_train_examples=48, text_train_layers=1, **(FAST | {"freeze": "image"}))
    fit_on_samples(model, cfg, tmp_path)

    after = model.state_dict()
    changed = lambda prefix: [k for k in before  # noqa: E731
                              if k.startswith(prefix) and not torch.equal(before[k], after[k])]
    bert = "text_encoder.bert."
    assert changed(bert + "embeddings.") == changed(bert + "encoder.layer.0.") == []
    assert changed(bert + "encoder.relative_attention_bias.") == []  # MPNet's; BERT has none
    assert bert + "encoder.layer.1.intermediate.dense.weight" in changed(bert + "encoder.layer.1.")
    assert changed("fusion.")
    assert not any(p.requires_grad for p in model.text_encoder.bert.embeddings.parameters())
    assert json.loads((tmp_path / "config.json").read_text())["train"]["text_train_layers"] == 1


# pixels, cached image features, both cached, cached image features and text encoder's fixed bottom
@pytest.mark.parametrize("freeze, text_train_layers", [("none", 0), ("image", 0), ("both", 0), ("image", 1)])
@pytest.mark.parametrize("missing", ["image", "text"])
def test_a_blanked_modality_is_what_scoring_feeds_for_a_missing_one(freeze, text_train_layers, missing):
    """Modality dropout and predict_indices(missing=...) give each row exactly what the model
    computes from scoring's blank inputs: zero pixels (the mean image) or the empty text,
    [CLS] [SEP]; the other modality is the row's own. ote uses tokens of both modalities.
    With --text-train-layers, training reads the fixed bottom's cached hidden states: they give
    what the whole text encoder computes, for the rows' texts and for the empty one."""
    from mmsa_cli.training.batches import pad_tokens
    from mmsa_cli.training.loop import predict_indices

    model = tiny_model("ote").eval()
    cfg = TrainConfig(**(FAST | {"freeze": freeze, "text_train_layers": text_train_layers}))
    examples = load_examples(MVSA)
    data = prepare(examples, model, cfg, torch.device("cpu"), keep_tokens=True)
    rows = list(range(20))
    got = predict_indices(model, data, rows, cfg, torch.device("cpu"), missing=missing)

    empty = model.text_encoder.tokenizer("")["input_ids"]
    ids, mask = pad_tokens([empty if missing == "text" else data.tokens[i] for i in rows], data.pad_id)
    pixels = torch.stack([torch.as_tensor(data.images[i][1]) for i in rows])
    if missing == "image":
        pixels = torch.zeros_like(pixels)
    with torch.no_grad():
        expected = model(ids, mask, pixels).softmax(-1)
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=0)  # cached tokens and bottoms are float16
    own = predict_indices(model, data, rows, cfg, torch.device("cpu"))
    assert not torch.allclose(got, own, atol=1e-3)
    assert (data.text_bottoms is not None) == bool(text_train_layers)
    if text_train_layers:
        ids, mask = pad_tokens([data.tokens[i] for i in rows], data.pad_id)
        pixels = torch.stack([torch.as_tensor(data.images[i][1]) for i in rows])
        with torch.no_grad():
            torch.testing.assert_close(own, model(ids, mask, pixels).softmax(-1), atol=2e-3, rtol=0)


def test_modality_dropout_blanks_one_modality_of_about_p_of_the_rows():
    from mmsa_cli.training.modality_dropout import draw_dropped

    text, image = draw_dropped(20_000, 0.3, torch.Generator().manual_seed(0))
    assert not (text & image).any()
    assert 0.28 < (text | image).float().mean() < 0.32
    assert 0.45 < image.sum() / (text | image).sum() < 0.55


@pytest.mark.parametrize("option", ["modality_dropout", "rdrop_alpha"])
def test_regularizer_changes_training_and_is_saved(tmp_path, option):
    """Same seed and data, the option at 0 and at 1: a run that blanks one modality of every
    row, or adds R-Drop's second pass and KL term, learns differently, and config.json says so."""
    losses = {}
    for value in (0.0, 1.0):
        cfg = TrainConfig(epochs=1, max_train_examples=48, **{option: value}, **(FAST | {"freeze": "both"}))
        _, _, result = fit_on_samples(tiny_model("naive-cat"), cfg, tmp_path / str(value))
        losses[value] = result["history"][0]["train_loss"]
        assert json.loads((tmp_path / str(value) / "config.json").read_text())["train"][option] == value
    assert losses[0.0] != pytest.approx(losses[1.0], rel=1e-3)


def test_rdrop_penalty_is_the_symmetric_kl_divergence():
    from mmsa_cli.training.objectives import rdrop_penalty

    a, b = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p, q = a.softmax(-1), b.softmax(-1)
    kl = lambda x, y: (x * (x / y).log()).sum(-1).mean()  # noqa: E731
    torch.testing.assert_close(rdrop_penalty(a, b), (kl(p, q) + kl(q, p)) / 2)
    torch.testing.assert_close(rdrop_penalty(a, b), rdrop_penalty(b, a))
    assert rdrop_penalty(a, a + 5.0).item() == pytest.approx(0.0, abs=1e-6)  # same probabilities


@pytest.mark.parametrize("encoder", ["text_encoder", "image_encoder"])
def test_layerwise_lr_groups_slow_each_layer_below_the_top(encoder):
    """decay 0.5: the top layer learns at lr, the one below at lr / 2, ... the first at
    lr / 2 ** (layers - 1); parameters outside the layers (BERT's pooler) count as the top;
    fixed parameters are left out; every trainable parameter is in exactly one group."""
    from mmsa_cli.training.objectives import layerwise_lr_groups

    module = getattr(tiny_model("naive-cat"), encoder)
    layers = module.layers() if encoder == "text_encoder" else module.stages()
    layers[0].requires_grad_(False)  # as a frozen first stage would be
    groups = layerwise_lr_groups(module, layers, 1.0, 0.5)

    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(lr_of)
    expected = {id(p): 1.0 for p in module.parameters() if p.requires_grad}
    for depth, layer in enumerate(reversed(layers)):
        expected.update({id(p): 0.5 ** depth for p in layer.parameters() if p.requires_grad})
    assert lr_of == expected
    assert len(groups) == len(layers) - 1
    if encoder == "text_encoder":
        assert lr_of[id(module.bert.pooler.dense.weight)] == 1.0
    [single] = layerwise_lr_groups(module, layers, 1.0, 1.0)
    assert single["lr"] == 1.0 and {id(p) for p in single["params"]} == set(expected)


@pytest.mark.parametrize("decay", [0.0, 1.5])
def test_layerwise_lr_decay_outside_0_1_is_refused(decay):
    from mmsa_cli.training.objectives import layerwise_lr_groups

    model = tiny_model("naive-cat")
    with pytest.raises(ConfigError, match=f"layer-wise learning-rate decay {decay} must be in"):
        layerwise_lr_groups(model.text_encoder, model.text_encoder.layers(), 1e-3, decay)


def test_ema_weights_are_validated_and_saved(tmp_path):
    """--ema-decay 0.9, one epoch: the run folder holds the average (not the last weights), and
    the rebuilt model predicts exactly what training measured with it."""
    from mmsa_cli.scoring.evaluate import evaluate_examples

    model = tiny_model("naive-cat")
    cfg = TrainConfig(epochs=1, max_train_examples=48, ema_decay=0.9, **(FAST | {"freeze": "image"}))
    examples, data, result = fit_on_samples(model, cfg, tmp_path)

    run = load_run(tmp_path)
    saved, last = run.model.state_dict(), model.state_dict()
    assert not torch.equal(saved["fusion.head.3.weight"], last["fusion.head.3.weight"])
    assert torch.equal(saved["image_encoder.net.features.0.weight"], last["image_encoder.net.features.0.weight"])
    val = [examples[i] for i in data.val_idx]
    metrics, _ = evaluate_examples(run, val, device="cpu")
    assert metrics["confusion_matrix"] == result["validation"]["confusion_matrix"]


@pytest.mark.parametrize("step, expected_weight", [(0, 1.9), (100, 1.1)])
def test_update_ema_averages_floats_and_copies_integer_buffers(step, expected_weight):
    """Decay 0.9, warmed up as min(0.9, (1 + step) / (10 + step)): 0.1 at step 0, 0.9 later."""
    from mmsa_cli.training.objectives import update_ema

    ema = torch.nn.BatchNorm1d(2)
    model = copy.deepcopy(ema)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.num_batches_tracked.fill_(7)
    update_ema(ema, model, 0.9, step)
    torch.testing.assert_close(ema.weight, torch.full((2,), expected_weight))
    assert ema.num_batches_tracked.item() == 7 and ema.num_batches_tracked.dtype == torch.int64


@pytest.mark.parametrize("fusion, option, freeze, message", [
    ("image-only", {"image_train_stages": 4}, "none", "--image-train-stages 4: 'tiny-cnn' has 3 stages"),
    ("image-only", {"image_train_stages": 1}, "image",
     "--image-train-stages 1 fine-tunes part of the image encoder, but --freeze image"),
    ("text-only", {"text_train_layers": 3}, "image", "--text-train-layers 3: this text encoder has 2 layers"),
    ("text-only", {"text_train_layers": 1}, "text",
     "--text-train-layers 1 fine-tunes part of the text encoder, but --freeze text"),
])
def test_bad_partial_fine_tunes_are_refused(tmp_path, fusion, option, freeze, message):
    with pytest.raises(ConfigError, match=message):
        train(TrainSource(str(MVSA)), tmp_path, [fusion], ModelConfig(**TINY),
              TrainConfig(epochs=1, **(FAST | {"freeze": freeze} | option)), weights=RANDOM)


def test_ensemble_trains_and_its_run_folder_rebuilds(tmp_path):
    """--fusion ensemble --ensemble-members naive-cat,ote --aux-loss-weight 1: config.json keeps
    the members (a JSON list, a tuple again on load) and load_run rebuilds the same model."""
    from mmsa_cli.training.batches import ImageDataset

    members = ("naive-cat", "ote")
    cfg = TrainConfig(epochs=1, max_train_examples=48, aux_loss_weight=1.0, **(FAST | {"freeze": "both"}))
    [result] = train(TrainSource(str(MVSA)), tmp_path, ["ensemble"],
                     ModelConfig(fusion="ensemble", ensemble_members=members, **TINY), cfg, weights=RANDOM)
    assert result["fusion"] == "ensemble"
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model"]["ensemble_members"] == list(members) and saved["train"]["aux_loss_weight"] == 1.0
    run = load_run(tmp_path)
    assert run.model_cfg.ensemble_members == members
    assert [type(m).__name__ for m in run.model.fusion.members] == ["NaiveCat", "OutputTransformerEncoder"]
    batch = load_examples(MVSA)[:4]
    tok = run.model.text_encoder.tokenizer
    enc = tok([e.text for e in batch], padding=True, truncation=True, max_length=64, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    images = ImageDataset([e.image_path for e in batch], dataclasses.replace(run.inputs, image_size=64))
    pixels = torch.stack([torch.from_numpy(images[i][1]) for i in range(len(batch))])
    with torch.no_grad():
        logits, aux = run.model.forward_head(run.model.forward_features(ids, mask, pixels))
    assert len(aux) == 2
    torch.testing.assert_close(logits.softmax(-1), (aux[0].softmax(-1) + aux[1].softmax(-1)) / 2)


# --------------------------------------------------------------------------- split


def test_split_is_deterministic_and_stratified(smoke_run, table_run):
    smoke_split = read_split_csv(smoke_run[0] / "split.csv")
    assert len(smoke_split) == 300
    # Same rows and seed through the other layout: the same split, row for row.
    assert read_split_csv(table_run[0] / "split.csv") == smoke_split
    val = Counter(r["label"] for r in smoke_split if r["split"] == "val")
    assert val == {"positive": 30, "neutral": 12, "negative": 18}  # 20% of 150 / 60 / 90
    # And it is the library's split for that seed.
    labels = [e.label for e in load_examples(MVSA)]
    train_idx, val_idx = stratified_split(labels, 0.2, 42)
    assert [r["split"] for r in smoke_split] == ["val" if i in set(val_idx) else "train" for i in range(300)]
    assert stratified_split(labels, 0.2, 42) == (train_idx, val_idx)
    other_train, other_val = stratified_split(labels, 0.2, 7)
    assert other_val != val_idx
    assert Counter(labels[i] for i in other_val) == Counter(labels[i] for i in val_idx)


# --------------------------------------------------------------------------- table layout


def test_table_layout_trains(table_run):
    out, result = table_run
    assert result["train_rows"] == 240 and result["val_rows"] == 60 and result["skipped_rows"] == 0
    assert result["epochs_run"] >= 1
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["data"].endswith("train.parquet")


# --------------------------------------------------------------------------- several fusions


def test_several_fusions_write_a_comparison(comparison_run):
    out, results = comparison_run
    assert [r["fusion"] for r in results] == ["text-only", "image-only"]
    for fusion in ("text-only", "image-only"):
        for name in RUN_FILES:
            assert (out / fusion / name).is_file(), f"{fusion}/{name}"
        assert (out / fusion / "split.csv").read_bytes() == (out / "split.csv").read_bytes()
        assert json.loads((out / fusion / "config.json").read_text())["model"]["fusion"] == fusion
        assert load_run(out, fusion).model_cfg.fusion == fusion
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["fusion"] for r in rows] == ["text-only", "image-only"]
    assert [r["name"] for r in rows] == ["BERT", "ResNet"]
    for row, result in zip(rows, results):
        assert row["accuracy"] == result["validation"]["accuracy"]
    table = (out / "comparison.md").read_text().splitlines()
    assert table[0].startswith("| model | fusion | accuracy")
    assert len(table) == 2 + len(results)
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "model.safetensors").exists()  # the top folder holds no single model


# --------------------------------------------------------------------------- bad images


def test_bad_images_are_skipped_and_listed(broken_mvsa, tmp_path):
    root, corrupt, missing = broken_mvsa
    out = tmp_path / "run"
    [result] = train(TrainSource(str(root)), out, ["text-only"], ModelConfig(fusion="text-only", **TINY),
                     TrainConfig(epochs=1, max_train_examples=32, **FAST), weights=RANDOM)
    assert result["skipped_rows"] == 2
    split = read_split_csv(out / "split.csv")
    assert len(split) == 300  # the split lists every labelled row; skipped ones are just not used
    val_guids = {r["guid"] for r in split if r["split"] == "val"}
    assert result["val_rows"] == len(val_guids - {corrupt, missing})
    assert result["train_rows"] <= 32
    skipped = {r["guid"]: r for r in read_split_csv(out / "skipped.csv")}
    assert set(skipped) == {corrupt, missing}
    assert skipped[corrupt]["error"].startswith("corrupt:")
    assert skipped[missing]["error"].startswith("missing:")
    assert skipped[missing]["image"].endswith(f"{missing}.jpg")


def test_strict_refuses_bad_images(broken_mvsa, tmp_path):
    root, corrupt, missing = broken_mvsa
    with pytest.raises(DataError) as err:
        train(TrainSource(str(root)), tmp_path / "run", ["text-only"], ModelConfig(fusion="text-only", **TINY),
              TrainConfig(epochs=1, strict=True, **FAST), weights=RANDOM)
    message = str(err.value)
    assert "2 of 300" in message and "--strict" in message
    assert corrupt in message and missing in message
    assert not (tmp_path / "run").exists() and not list(tmp_path.iterdir())  # nothing half-written left


def test_frozen_encoders_and_cross_validation(tmp_path):
    """--freeze both --folds 3: each fold validates on a disjoint third, every labelled row is
    validated exactly once, and cv.json reports mean and spread per fusion."""
    fusions = ["text-only", "cmac"]
    cfg = TrainConfig(epochs=1, folds=3, **(FAST | {"freeze": "both"}))
    results = train(TrainSource(str(MVSA)), tmp_path, fusions, ModelConfig(**TINY), cfg, weights=RANDOM)
    assert [(r["fold"], r["fusion"]) for r in results] == [(k, f) for k in (1, 2, 3) for f in fusions]
    val_guids = [row["guid"] for k in (1, 2, 3) for row in read_split_csv(tmp_path / f"fold-{k}" / "split.csv")
                 if row["split"] == "val"]
    assert len(val_guids) == len(set(val_guids)) == 300
    summary = json.loads((tmp_path / "cv.json").read_text())["rows"]
    assert [r["fusion"] for r in summary] == fusions
    for row in summary:
        per_fold = [r["validation"]["accuracy"] for r in results if r["fusion"] == row["fusion"]]
        assert row["accuracy"] == pytest.approx(sum(per_fold) / 3)
        assert row["accuracy_per_fold"] == pytest.approx(per_fold, abs=1e-4)
    assert (tmp_path / "cv.md").read_text().count("±") == 3 * len(fusions)
    assert (tmp_path / "cv.png").stat().st_size > 0
    assert (tmp_path / "fold-2" / "cmac" / "model.safetensors").is_file()


def test_folds_trained_one_at_a_time_give_the_full_cv_summary(tmp_path):
    """--fold K trains only fold K; once the last missing fold is trained into the same folder,
    cv.json is the one a single --folds run writes."""
    cfg = TrainConfig(epochs=1, folds=3, **(FAST | {"freeze": "both"}))
    full = train(TrainSource(str(MVSA)), tmp_path / "full", ["text-only"], ModelConfig(**TINY), cfg, weights=RANDOM)
    split = tmp_path / "split"
    split.mkdir()
    (split / "cv.json").write_text("{}")  # left by an earlier run with other folds
    for k in (2, 3):
        results = train(TrainSource(str(MVSA)), split, ["text-only"], ModelConfig(**TINY),
                        dataclasses.replace(cfg, fold=k), weights=RANDOM)
        assert [r["fold"] for r in results] == [k]
        assert results[0]["validation"] == full[k - 1]["validation"]
        assert not (split / "fold-1").exists() and not (split / "cv.json").exists()
    train(TrainSource(str(MVSA)), split, ["text-only"], ModelConfig(**TINY), dataclasses.replace(cfg, fold=1),
          weights=RANDOM)
    assert json.loads((split / "cv.json").read_text()) == json.loads((tmp_path / "full" / "cv.json").read_text())


@pytest.mark.parametrize("fold, folds", [(4, 3), (1, 0)])
def test_fold_outside_the_folds_is_refused(tmp_path, fold, folds):
    with pytest.raises(ConfigError, match=f"--fold {fold} needs --folds"):
        train(TrainSource(str(MVSA)), tmp_path, ["text-only"], ModelConfig(**TINY),
              TrainConfig(epochs=1, folds=folds, fold=fold, **FAST), weights=RANDOM)


def test_feature_cache_reuses_a_superset_and_recomputes_a_subset(tmp_path):
    from mmsa_cli.training.batches import ImageFeatures, cached_image_features

    calls = []

    def compute(with_tokens):
        def run():
            calls.append(with_tokens)
            return ImageFeatures(torch.ones(4, 3), torch.ones(4, 2, 3, dtype=torch.float16) if with_tokens else None,
                                 {2: "corrupt: x"})
        return run

    key = ["enc", "weights", "a.jpg:10:1"]
    pooled_only = cached_image_features(tmp_path, key, False, compute(False))
    assert pooled_only.tokens is None and calls == [False]
    with_tokens = cached_image_features(tmp_path, key, True, compute(True))  # pooled-only file: recompute
    assert with_tokens.tokens is not None and calls == [False, True]
    again = cached_image_features(tmp_path, key, False, compute(False))     # token file serves pooled runs
    assert again.tokens is None and again.errors == {2: "corrupt: x"} and calls == [False, True]
    cached_image_features(tmp_path, key[:2] + ["a.jpg:11:1"], False, compute(False))  # a file changed
    assert calls == [False, True, False]


def test_balanced_class_weights_equalise_class_totals():
    labels = torch.tensor([0] * 6 + [1] * 1 + [2] * 3)
    w = class_weights(labels, 3, "balanced")
    totals = torch.bincount(labels, minlength=3).float() * w
    assert torch.allclose(totals, torch.full((3,), 10 / 3))
    assert class_weights(labels, 3, "none") is None


def test_aux_loss_weight_adds_the_auxiliary_losses():
    torch.manual_seed(0)
    logits, aux, y = torch.randn(8, 3), (torch.randn(8, 3), torch.randn(8, 3)), torch.randint(0, 3, (8,))
    plain = training_loss(logits, aux, y, TrainConfig(), None)
    with_aux = training_loss(logits, aux, y, TrainConfig(aux_loss_weight=0.5), None)
    expected = torch.nn.functional.cross_entropy(logits, y) + 0.5 * torch.stack(
        [torch.nn.functional.cross_entropy(a, y) for a in aux]).mean()
    assert torch.isclose(plain, torch.nn.functional.cross_entropy(logits, y))
    assert torch.isclose(with_aux, expected)


def test_file_fingerprint_follows_content_not_path_or_mtime(tmp_path):
    import os

    from mmsa_cli.training.batches import file_fingerprint

    a, b = tmp_path / "a.jpg", tmp_path / "copy" / "b.jpg"
    b.parent.mkdir()
    a.write_bytes(b"\xff\xd8 some jpeg bytes")
    b.write_bytes(a.read_bytes())
    os.utime(b, ns=(1, 1))
    assert file_fingerprint(a) == file_fingerprint(b)  # copied elsewhere, mtime reset: same key
    b.write_bytes(b"\xff\xd8 other bytes!!!!")
    assert file_fingerprint(a) != file_fingerprint(b)
    assert file_fingerprint(tmp_path / "missing.jpg") == "absent"


def test_auto_loader_workers_leave_the_cpu_to_the_model_and_feed_a_gpu(monkeypatch):
    from mmsa_cli.training.batches import loader_workers

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert loader_workers(-1, "cpu") == 0
    assert loader_workers(-1, "cuda") == 8          # 16 cores: capped at 8
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert loader_workers(-1, "cuda:0") == 2        # one per core but two
    assert loader_workers(3, "cuda") == 3 and loader_workers(0, "cuda") == 0  # an explicit count is kept
