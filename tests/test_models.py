"""Fusion models: shapes, real padding masks, modality use, probability fusion, and the
errors create_model gives for bad names and missing offline weights.

Tiny random encoders only (tiny-bert text, tiny-cnn image), CPU, eval mode.
"""
from __future__ import annotations

import pytest
import torch

from mmsa_cli.config import ModelConfig
from mmsa_cli.errors import ConfigError, WeightsNotFoundError
from mmsa_cli.models import FUSIONS, create_model
from mmsa_cli.models.image_encoders import IMAGE_PRESETS, create_image_encoder

# Parametrize straight from the registry: a new fusion is tested without editing this file.
FUSION_NAMES = list(FUSIONS)

# What each fusion is expected to do. Every registered fusion must be listed here (see the guard
# test), so a new one has to declare its modalities before the suite passes.
EXPECTED = {
    #                 uses_text, uses_image, classifiers whose probabilities are averaged (0 = none)
    "text-only": (True, False, 0),
    "image-only": (False, True, 0),
    "naive-cat": (True, True, 0),
    "naive-combine": (True, True, 2),
    "ote": (True, True, 0),
    "hstec": (True, True, 2),
    "cmac": (True, True, 2),
    "ensemble": (True, True, len(ModelConfig.ensemble_members)),  # the default members
}
TEXTS = ["I love this so much, great day #BestDayEver", "worst", "meeting at the station"]
IMAGE_SIZE = 64  # tiny-cnn


def tiny_cfg(fusion: str, **kw) -> ModelConfig:
    return ModelConfig(fusion=fusion, text_encoder="tiny-bert", image_encoder="tiny-cnn", **kw)


@pytest.fixture(scope="module")
def models():
    """One eval-mode tiny model per fusion, built lazily and reused by every test here."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = create_model(tiny_cfg(name), pretrained=False).eval()
        return cache[name]

    return get


@pytest.fixture(scope="module")
def batch(models):
    """Padded text (row lengths differ, so rows 1 and 2 have padding) and random pixels."""
    tok = models("text-only").text_encoder.tokenizer
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert (mask == 0).any(), "the batch must contain padding for the mask tests"
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(len(TEXTS), 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    return ids, mask, pixels, tok.pad_token_id


def run(model, ids, mask, pixels):
    with torch.no_grad():
        return model(ids, mask, pixels)


def test_parametrization_covers_registry():
    assert FUSION_NAMES == list(FUSIONS)
    assert set(EXPECTED) == set(FUSIONS), "declare the new fusion's modalities in EXPECTED"


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_flags_match_expectations(name, models):
    uses_text, uses_image, _ = EXPECTED[name]
    model = models(name)
    assert (model.uses_text, model.uses_image) == (uses_text, uses_image)
    if FUSIONS[name].uses_tokens:
        assert uses_text and uses_image


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_forward_shapes_and_softmax(name, models, batch):
    ids, mask, pixels, _ = batch
    logits = run(models(name), ids, mask, pixels)
    assert logits.shape == (len(TEXTS), 3)
    assert torch.isfinite(logits).all()
    probs = logits.softmax(-1)
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(TEXTS)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_batch_of_one_matches_batched_row(name, models, batch):
    ids, mask, pixels, _ = batch
    model = models(name)
    full = run(model, ids, mask, pixels)
    # Row 1 alone, trimmed to its real tokens (no padding at all).
    n = int(mask[1].sum())
    single = run(model, ids[1:2, :n], mask[1:2, :n], pixels[1:2])
    assert single.shape == (1, 3)
    torch.testing.assert_close(single, full[1:2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_extra_padding_does_not_change_output(name, models, batch):
    ids, mask, pixels, pad_id = batch
    model = models(name)
    base = run(model, ids, mask, pixels)
    extra = 7
    ids_long = torch.cat([ids, torch.full((ids.shape[0], extra), pad_id, dtype=ids.dtype)], dim=1)
    mask_long = torch.cat([mask, torch.zeros((mask.shape[0], extra), dtype=mask.dtype)], dim=1)
    torch.testing.assert_close(run(model, ids_long, mask_long, pixels), base, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_padded_token_ids_are_ignored(name, models, batch):
    ids, mask, pixels, _ = batch
    model = models(name)
    base = run(model, ids, mask, pixels)
    changed = ids.clone()
    changed[mask == 0] = 2293  # "love": a real, strongly weighted word if the mask leaked
    assert not torch.equal(changed, ids)
    torch.testing.assert_close(run(model, changed, mask, pixels), base, atol=1e-5, rtol=1e-5)


def _other_text(ids, mask):
    """Same shape and mask, different real tokens (first/last special tokens kept)."""
    changed = ids.clone()
    inner = (mask == 1) & (ids != 101) & (ids != 102)
    changed[inner] = (ids[inner] * 7 + 1000) % 28000 + 1000
    assert not torch.equal(changed, ids)
    return changed


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_modality_use(name, models, batch):
    ids, mask, pixels, _ = batch
    uses_text, uses_image, _ = EXPECTED[name]
    model = models(name)
    base = run(model, ids, mask, pixels)
    new_text = run(model, _other_text(ids, mask), mask, pixels)
    new_image = run(model, ids, mask, torch.randn(pixels.shape, generator=torch.Generator().manual_seed(2)))
    if uses_text:
        assert not torch.allclose(new_text, base, atol=1e-6), f"{name} ignores the text"
    else:
        torch.testing.assert_close(new_text, base, atol=1e-6, rtol=0)
    if uses_image:
        assert not torch.allclose(new_image, base, atol=1e-6), f"{name} ignores the image"
    else:
        torch.testing.assert_close(new_image, base, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", FUSION_NAMES)
def test_probability_fusion_is_mean_of_aux_classifiers(name, models, batch):
    ids, mask, pixels, _ = batch
    model = models(name)
    with torch.no_grad():
        logits, aux = model.forward_head(model.forward_features(ids, mask, pixels))
    averaged = EXPECTED[name][2]
    if not averaged:
        assert len(aux) == 0
        return
    assert len(aux) == averaged
    assert all(a.shape == (len(TEXTS), 3) for a in aux)
    expected = sum(a.softmax(-1) for a in aux) / averaged
    torch.testing.assert_close(logits.softmax(-1), expected, atol=1e-6, rtol=1e-5)
    # The classifiers differ, so this is a real average, not one head copied.
    assert not torch.allclose(aux[0].softmax(-1), aux[1].softmax(-1), atol=1e-4)


# --------------------------------------------------------------------------- ensemble


def test_ensemble_is_the_mean_of_standalone_members(models, batch):
    """Each member's weights (and the shared encoders) copied into a standalone model of that
    fusion: the ensemble's probabilities are the mean of the standalone models' probabilities."""
    ids, mask, pixels, _ = batch
    ensemble = models("ensemble")
    names = ensemble.cfg.ensemble_members
    assert len(ensemble.fusion.members) == len(names) == 5
    standalone = []
    for name, member in zip(names, ensemble.fusion.members):
        torch.manual_seed(123)  # other weights than the ensemble's, so the copy must do the work
        model = create_model(tiny_cfg(name), pretrained=False).eval()
        model.text_encoder.load_state_dict(ensemble.text_encoder.state_dict())
        model.image_encoder.load_state_dict(ensemble.image_encoder.state_dict())
        model.fusion.load_state_dict(member.state_dict())
        assert type(model.fusion) is type(member)
        standalone.append(run(model, ids, mask, pixels).softmax(-1))
    got = run(ensemble, ids, mask, pixels).softmax(-1)
    torch.testing.assert_close(got, torch.stack(standalone).mean(0), atol=1e-6, rtol=1e-5)
    # A real average: the members disagree, so no single member equals the ensemble.
    assert all(not torch.allclose(p, got, atol=1e-4) for p in standalone)


def test_ensemble_aux_is_one_logit_tensor_per_member(batch):
    ids, mask, pixels, _ = batch
    torch.manual_seed(0)
    members = ("ote", "text-only", "ote")  # a repeated name is a second, differently initialised member
    model = create_model(tiny_cfg("ensemble", ensemble_members=members), pretrained=False).eval()
    with torch.no_grad():
        logits, aux = model.forward_head(model.forward_features(ids, mask, pixels))
        alone = [m(model.forward_features(ids, mask, pixels))[0] for m in model.fusion.members]
    assert isinstance(aux, tuple) and len(aux) == len(members)
    for a, b in zip(aux, alone):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(aux[0], aux[2], atol=1e-4)
    # State dict keys name members by position: stable, and what a run folder reloads.
    keys = {k.split(".")[2] for k in model.state_dict() if k.startswith("fusion.members.")}
    assert keys == {"0", "1", "2"}


@pytest.mark.parametrize("members, flags", [
    (("text-only",), (True, False, False)),
    (("image-only", "naive-cat"), (True, True, False)),
    (("text-only", "cmac"), (True, True, True)),
])
def test_ensemble_modalities_are_the_or_of_its_members(members, flags):
    model = create_model(tiny_cfg("ensemble", ensemble_members=members), pretrained=False)
    assert (model.uses_text, model.uses_image, model.fusion.uses_tokens) == flags


@pytest.mark.parametrize("members, problem", [
    ((), "no members"),
    (("ote", "ensemble"), "'ensemble' cannot be nested"),
    (("ote", "late-fusion"), "unknown member 'late-fusion'"),
])
def test_bad_ensemble_members_are_refused(members, problem):
    with pytest.raises(ConfigError) as err:
        create_model(tiny_cfg("ensemble", ensemble_members=members), pretrained=False)
    message = str(err.value)
    assert problem in message
    assert f"'{','.join(members) or '(empty)'}'" in message  # the value given
    valid = message.split("valid members: ")[1].split(", ")
    assert valid == [name for name in FUSIONS if name != "ensemble"]


# --------------------------------------------------------------------------- create_model errors


def test_unknown_fusion_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        create_model(tiny_cfg("late-fusion"), pretrained=False)
    message = str(err.value)
    assert "late-fusion" in message
    for name in FUSIONS:
        assert name in message


def test_unknown_image_encoder():
    with pytest.raises(ConfigError) as err:
        create_model(ModelConfig(fusion="image-only", text_encoder="tiny-bert", image_encoder="vgg99"),
                     pretrained=False)
    assert "vgg99" in str(err.value)
    assert "tiny-cnn" in str(err.value)


def test_image_size_below_the_trunk_stride_is_refused():
    with pytest.raises(ConfigError, match="image size 16 is below 32 pixels"):
        create_image_encoder("tiny-cnn", pretrained=False, image_size=16)


def test_resnet50_pretrained_without_cache_names_image_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as err:
        create_model(ModelConfig(fusion="image-only", text_encoder="tiny-bert", image_encoder="resnet50"),
                     pretrained=True)
    assert "--image-weights" in str(err.value)
    assert "resnet50" in str(err.value)


def test_bert_base_pretrained_offline_names_text_weights(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError) as err:
        create_model(ModelConfig(fusion="text-only", text_encoder="bert-base-uncased", image_encoder="tiny-cnn"),
                     pretrained=True)
    assert "--text-weights" in str(err.value)
    assert "bert-base-uncased" in str(err.value)


def test_resnet50_random_weights_constructs_and_runs():
    torch.manual_seed(0)
    model = create_model(ModelConfig(fusion="image-only", text_encoder="tiny-bert", image_encoder="resnet50"),
                         pretrained=False).eval()
    assert model.image_encoder.hidden_size == 2048 and model.image_encoder.image_size == 224
    ids = torch.tensor([[101, 2293, 102]])
    mask = torch.ones_like(ids)
    logits = run(model, ids, mask, torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list(IMAGE_PRESETS))
def test_image_trunk_stages_hold_every_trunk_parameter_once(name):
    """--image-train-stages counts these stages from the end: together they must be the whole
    trunk (every parameter but an ImageNet classifier's), in order, none twice."""
    from mmsa_cli.models.image_encoders import create_image_encoder

    params = lambda stages: [id(p) for stage in stages for p in stage.parameters()]  # noqa: E731
    encoder = create_image_encoder(name, pretrained=False)
    stages = encoder.stages()
    trunk = [id(p) for n, p in encoder.net.named_parameters() if not n.startswith(("_fc.", "fc."))]
    assert len(params(stages)) == len(set(params(stages))) and set(params(stages)) == set(trunk)
    assert params(encoder.fixed_stages(1)) == params(stages[:-1]) and params(stages[-1:])
    assert encoder.fixed_stages(0) == [] and params(encoder.fixed_stages(len(stages))) == []


def test_local_text_encoder_without_sdpa_support_loads(tiny_mpnet_folder):
    """A local folder of an architecture transformers runs only eagerly (MPNet) must load."""
    from mmsa_cli.models.text_encoders import create_text_encoder

    encoder = create_text_encoder(str(tiny_mpnet_folder))
    assert encoder.bert.config._attn_implementation == "eager"
    ids = torch.tensor([[101, 2293, 102, 0]])
    tokens, pooled = encoder(ids, (ids != 0).long())
    assert tokens.shape == (1, 4, 32) and pooled.shape == (1, 32) and torch.isfinite(pooled).all()


@pytest.mark.parametrize("encoder_name", ["tiny-bert", "tiny-mpnet"])
@pytest.mark.parametrize("pooling", ["mean", "pooler"])
def test_a_text_encoder_runs_in_two_slices_as_a_whole(encoder_name, pooling, tiny_mpnet_folder):
    """What a bag does with a shared bottom (models/bag.py): the hidden states after layer 1,
    then the layers above from them, give the whole encoder's tokens and pooled output, with
    padding; the slices leave the encoder itself whole."""
    from mmsa_cli.models.text_encoders import create_text_encoder

    torch.manual_seed(0)
    name = str(tiny_mpnet_folder) if encoder_name == "tiny-mpnet" else encoder_name
    encoder = create_text_encoder(name, pretrained=False, pooling=pooling).eval()
    ids = torch.tensor([[101, 2293, 2000, 102], [101, 7592, 102, 0]]) + (4 if encoder_name == "tiny-mpnet" else 0)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        tokens, pooled = encoder(ids, mask)
        bottom, _ = encoder(ids, mask, layer_slice=slice(0, 1))
        top_tokens, top_pooled = encoder(None, mask, layer_slice=slice(1, None), hidden_states=bottom)
    assert not torch.allclose(bottom, tokens, atol=1e-3)  # the bottom alone is not the whole
    assert torch.allclose(top_tokens, tokens, atol=1e-6) and torch.allclose(top_pooled, pooled, atol=1e-6)
    assert len(encoder.bert.encoder.layer) == 2 and type(encoder.bert.embeddings).__name__.endswith("Embeddings")
