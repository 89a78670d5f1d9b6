"""Shared test settings, the tiny scoring model folders (test_score, test_reliability) and a
local S3 server (test_ray, test_object_storage)."""
import os
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
    only eagerly), with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    from mmsa_cli.models.text_encoders import minilm_dir

    folder = tmp_path / "tiny-mpnet"
    MPNetModel(MPNetConfig(vocab_size=30527, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(folder)
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
    """A real S3-compatible server (moto) on localhost, its address in the environment that
    pyarrow, boto3, image workers and Ray workers read (started before them, so inherited).
    Empty for each module: moto keeps its buckets per process, so it is reset first."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")).close()
    saved = dict(os.environ)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    yield f"http://{host}:{port}"
    server.stop()
    os.environ.clear()
    os.environ.update(saved)
