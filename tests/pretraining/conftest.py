"""Session fixtures of the pre-training tests: real shards from the web sample, and a small
byte-level BPE trained on them (vocab 1000) for the tests where a 50k output layer only costs time."""

import pytest

from .helpers import make_shards


@pytest.fixture(scope="session")
def shards(web_sample, tmp_path_factory):
    """3 gzip JSONL shards of 1,000 real documents each, named like the sampling stage's output."""
    return make_shards(web_sample, tmp_path_factory.mktemp("shards"), n_docs=3000, n_shards=3)


@pytest.fixture(scope="session")
def small_bpe(shards, tmp_path_factory):
    from pretraining.tokenizer import train_bpe

    return train_bpe(shards, tmp_path_factory.mktemp("bpe") / "tok", 1000, max_docs=2000)
