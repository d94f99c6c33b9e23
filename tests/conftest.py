"""Shared test fixtures.

- Nothing touches the network: an autouse guard refuses every non-loopback connection and the HF
  libraries run offline.
- Real data comes from the data directory (``$BERTIN_DATA_DIR`` or ``../shared/data``); tests that
  need it skip with the reason when it is absent.
- Tiny models (2 layers, hidden 32) are built in-process with BERTIN's real tokenizer.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Offline before any HF library is imported by a test module.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Keep JAX on CPU and quiet in tests, whatever the machine has.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bertin_bench import paths  # noqa: E402

_LOOPBACK = ("127.", "::1", "localhost")
_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith(_LOOPBACK) or self.family == socket.AF_UNIX):
        return _real_connect(self, address)
    raise RuntimeError(f"tests must not use the network (tried to connect to {address!r})")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real Spanish data directory; skip (with how to fix) when it is absent."""
    try:
        root = paths.data_dir()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    if root is None:
        pytest.skip(f"no data directory: set ${paths.ENV_VAR} or put the data in ../shared/data")
    return root


def _need(root: Path, *parts: str) -> Path:
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is missing from the data directory")
    return path


@pytest.fixture(scope="session")
def web_sample(data_dir) -> Path:
    return _need(data_dir, "web_es", "web_es_mix.jsonl.gz")


@pytest.fixture(scope="session")
def kenlm_dir(data_dir) -> Path:
    _need(data_dir, "kenlm_es", "es.arpa.bin")
    return _need(data_dir, "kenlm_es", "es.sp.model").parent


@pytest.fixture(scope="session")
def wiki_text(data_dir) -> Path:
    return _need(data_dir, "wiki_es", "wiki_es.txt")


@pytest.fixture(scope="session")
def bertin_tokenizer_dir(data_dir) -> Path:
    return _need(data_dir, "tokenizers", "bertin-roberta-base-spanish")


# Tiny RoBERTa used by pretraining and benchmark tests: 2 layers, hidden 32. Vocab and special
# token ids come from BERTIN's real tokenizer so exported directories load like real checkpoints.
TINY_ROBERTA = dict(
    num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=130, type_vocab_size=1,
)


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory, bertin_tokenizer_dir) -> Path:
    """A randomly initialised tiny FlaxRobertaForMaskedLM saved in Hugging Face format with its
    tokenizer, like an exported checkpoint."""
    from transformers import FlaxRobertaForMaskedLM, RobertaConfig, RobertaTokenizerFast

    out = tmp_path_factory.mktemp("tiny-roberta")
    tok = RobertaTokenizerFast.from_pretrained(str(bertin_tokenizer_dir))
    config = RobertaConfig(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, **TINY_ROBERTA,
    )
    model = FlaxRobertaForMaskedLM(config, seed=0)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
