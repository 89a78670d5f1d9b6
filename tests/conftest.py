"""Shared test settings."""
import pytest
import torch


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
