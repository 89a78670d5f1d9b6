"""Shared test settings, the tiny scoring model folders (test_score, test_reliability) and a
local S3 server (test_ray, test_object_storage)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine
    PyTorch's OpenMP threads wait on each other: one thread keeps the suite quick."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_mpnet_folder(tmp_path):
    """A local Hugging Face folder of a 2-layer random MPNet (an architecture transformers runs
    only eagerly) whose tokenizer is all-mpnet-base-v2's kind: MiniLM's (bert-base-uncased)
    word pieces shifted by 4 ids, with <s>, <pad>, </s>, <unk> and <mask>."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    from mmsa_cli.models.text_encoders import minilm_dir

    folder = tmp_path / "tiny-mpnet"
    pieces = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {piece: i for i, piece in enumerate(["<s>", "<pad>", "</s>", "<unk>", *pieces, "<mask>"])}
    MPNetModel(MPNetConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64)).save_pretrained(folder)
    MPNetTokenizerFast(vocab=vocab).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """Tiny random model folders, exported by the real `mmsa export` code."""
    from scoring_helpers import make_model_folder

    root = tmp_path_factory.mktemp("models")
    return {f: make_model_folder(root / f, f) for f in ("ote", "text-only", "image-only")}


@pytest.fixture(scope="session")
def scorers(models) -> dict:
    from mmsa_cli.scoring import Scorer

    return {f: Scorer(p, "cpu", batch_size=8) for f, p in models.items()}


@pytest.fixture(scope="module")
def s3():
    """A local S3 server (moto), empty for each module, its address in the environment that
    pyarrow, boto3, image workers and Ray workers read (started before them, so inherited)."""
    from scoring_helpers import local_s3_server

    with local_s3_server() as url:
        yield url
