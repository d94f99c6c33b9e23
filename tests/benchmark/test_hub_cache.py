"""Every registry family run as a user with a Hugging Face cache runs it: tiny stand-ins stored under
the registry's real ids in a temporary cache with the Hub's layout, the Hub disabled
(HF_HUB_OFFLINE=1, set by tests/conftest.py), each fine-tuned end to end on a slice of real data.

Covered: BERT WordPiece cased with PyTorch-only weights (BETO), RoBERTa BPE with PyTorch-only
weights (RoBERTa-BNE), safetensors-only (BERTIN Gaussian), Flax (mBERT, by its org-less Hub id);
the resolved commit and the weights format recorded; a changed snapshot redone; an explicit
revision used and recorded; a model missing a part failing before any task data is read."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmark import models, results
from benchmark.models import ModelError, resolve_model
from benchmark.runner import run_benchmark
from tests.benchmark.hub_fixtures import (
    bert_model, commit_of, copy_tokenizer, put_in_cache, roberta_model, wordpiece_tokenizer,
)

LIMITS = dict(limit_train=24, limit_eval=16)
FAST = {"epochs": 1, "max_length": 32, "learning_rate": 1e-3}
load = results.FinetuneResult.from_disk


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


needs_torch = pytest.mark.skipif(not _has_torch(), reason="building PyTorch-format weights needs torch "
                                 "(the dev extra installs it: pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, data_dir, bertin_tokenizer_dir):
    """A Hub cache with the stand-ins; ``models`` maps repo id -> (local build dir, commit)."""
    import huggingface_hub.constants as hf_constants

    root = tmp_path_factory.mktemp("hf_home")
    cache = root / "hub"
    build = root / "build"
    wp = wordpiece_tokenizer(build / "wordpiece", data_dir / "conll2002" / "esp.train")
    from transformers import RobertaTokenizerFast

    bpe = RobertaTokenizerFast.from_pretrained(str(bertin_tokenizer_dir))
    made = {}

    def add(repo_id, family, weights, tok_src, tok):
        out = build / repo_id.replace("/", "--")
        copy_tokenizer(tok_src, out)
        (bert_model if family == "bert" else roberta_model)(out, tok, weights)
        commit = commit_of(repo_id + "1")
        put_in_cache(cache, repo_id, out, commit)
        made[repo_id] = (out, commit)

    add("bert-base-multilingual-cased", "bert", "flax", build / "wordpiece", wp)
    if _has_torch():
        add("dccuchile/bert-base-spanish-wwm-cased", "bert", "pt", build / "wordpiece", wp)
        add("PlanTL-GOB-ES/roberta-base-bne", "roberta", "pt", bertin_tokenizer_dir, bpe)
        add("bertin-project/bertin-base-gaussian", "roberta", "safetensors", bertin_tokenizer_dir, bpe)
    saved = hf_constants.HF_HUB_CACHE
    hf_constants.HF_HUB_CACHE = str(cache)  # what HF_HOME=root would give a fresh process
    try:
        yield cache, made
    finally:
        hf_constants.HF_HUB_CACHE = saved


def _weights(res) -> str:
    rec = res.model
    return getattr(rec, "weights", None) or ("pt-format" if rec.from_pt else "flax")


@pytest.mark.parametrize("model, task, weights", [
    pytest.param("beto", "ner_conll2002_es", "pt", marks=needs_torch, id="bert-wordpiece-pytorch-only"),
    pytest.param("roberta-bne", "pos_conll2002_es", "pt", marks=needs_torch, id="roberta-bpe-pytorch-only"),
    pytest.param("bertin-gaussian", "pawsx_es", "safetensors", marks=needs_torch, id="safetensors-only"),
    pytest.param("bert-base-multilingual-cased", "pawsx_es", "flax", id="flax-org-less-hub-id"),
])
def test_registry_family_runs_end_to_end_from_the_cache(hub, tmp_path, model, task, weights):
    cache, made = hub
    [path] = run_benchmark(model, [task], seeds=1, results_dir=tmp_path, overrides=FAST, progress=False, **LIMITS)
    res = load(path)
    hub_id = models.MODELS[model].hub_id if model in models.MODELS else model
    _, commit = made[hub_id]
    assert res.model.hub_id == hub_id and res.model.revision == commit  # the commit scored is pinned
    assert res.model.source == ("registry" if model in models.MODELS else "hub")
    assert res.model.family == ("bert" if "bert-" in hub_id else "roberta")  # from the config, Hub ids too
    assert res.model.from_pt == (weights != "flax")
    if hasattr(res.model, "weights"):
        assert res.model.weights == weights
    assert res.task.sizes["test"] == 16 and 0 <= res.main_score <= 1


@needs_torch
def test_pytorch_weights_are_the_ones_loaded(hub):
    """The Flax model's embeddings are the PyTorch checkpoint's, not a fresh initialisation."""
    import torch

    cache, made = hub
    out, _ = made["dccuchile/bert-base-spanish-wwm-cased"]
    r = resolve_model("beto")
    assert (r.weights, r.commit, r.family) == ("pt", made["dccuchile/bert-base-spanish-wwm-cased"][1], "bert")
    flax = models.load_model(r, "token-classification", ("O", "B-PER"), seed=0)
    pt = torch.load(out / "pytorch_model.bin", map_location="cpu")
    emb = np.asarray(flax.params["bert"]["embeddings"]["word_embeddings"]["embedding"])
    np.testing.assert_allclose(emb, pt["bert.embeddings.word_embeddings.weight"].numpy(), atol=1e-6)


@needs_torch
def test_pytorch_only_without_torch_names_the_extra_and_safetensors_needs_none(hub, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ModelError, match=r"only PyTorch weights \(pytorch_model.bin\).*pip install 'bertin-bench\[torch\]'.*--from-pt"):
        resolve_model("roberta-bne")
    assert resolve_model("bertin-gaussian").weights == "safetensors"  # converted without torch


def test_changed_snapshot_is_redone_and_a_revision_is_used_and_recorded(hub, tmp_path, capsys):
    cache, made = hub
    hub_id = "bert-base-multilingual-cased"
    out, first = made[hub_id]
    kwargs = dict(seeds=1, results_dir=tmp_path, overrides=FAST, progress=False, echo=print, **LIMITS)
    [path] = run_benchmark(hub_id, ["pawsx_es"], **kwargs)
    before = load(path)
    written = path.stat().st_mtime_ns
    assert before.model.revision == first
    run_benchmark(hub_id, ["pawsx_es"], **kwargs)
    assert f"skip {path} (done)" in capsys.readouterr().out  # printed, not only logged

    # The repository moves on: new weights under a new commit, refs/main points at it.
    changed = tmp_path / "changed"
    shutil.copytree(out, changed)
    from tests.benchmark.hub_fixtures import bert_model as rebuild
    from transformers import BertTokenizerFast

    rebuild(changed, BertTokenizerFast.from_pretrained(str(changed)), "flax", seed=1)
    second = commit_of(hub_id + "2")
    put_in_cache(cache, hub_id, changed, second)
    try:
        [again] = run_benchmark(hub_id, ["pawsx_es"], **kwargs)
        assert f"redo {path}: {hub_id} now resolves to commit {second[:12]}" in capsys.readouterr().out
        redone = load(again)
        assert again == path and redone.model.revision == second
        assert path.stat().st_mtime_ns != written  # rewritten (dates have 1 s resolution: not a test)

        # --revision: the old commit, by its hash, read from the cache offline.
        [pinned] = run_benchmark(hub_id, ["pawsx_es"], revision=first, **kwargs)
        res = load(pinned)
        assert res.model.revision == first
        if hasattr(res.model, "requested_revision"):
            assert res.model.requested_revision == first
        with pytest.raises(ModelError, match=r"@0000000.*not in the Hugging Face cache.*HF_HUB_OFFLINE"):
            resolve_model(hub_id, revision="0" * 40)
    finally:
        (cache / f"models--{hub_id}" / "refs" / "main").write_text(first)


def test_org_less_hub_id_and_the_registry_entries():
    from huggingface_hub.utils import validate_repo_id

    for spec in models.MODELS.values():
        validate_repo_id(spec.hub_id)
        assert spec.revision is None or len(spec.revision) == 40
    assert models.MODELS["xlm-roberta-base"].hub_id == "FacebookAI/xlm-roberta-base"
    with pytest.raises(ModelError, match=r"unknown model 'xlm-roberta-bas'.*not in the Hugging Face cache.*"
                                         r"Did you mean 'xlm-roberta-base'"):
        resolve_model("xlm-roberta-bas")


def test_an_incomplete_model_fails_before_any_task_data(hub, tmp_path, monkeypatch):
    cache, made = hub
    out, _ = made["bert-base-multilingual-cased"]
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for name in ("config.json", "flax_model.msgpack"):
        shutil.copy(out / name, no_tok / name)
    import benchmark.loaders as loaders

    def never(*args, **kwargs):
        raise AssertionError("task data loaded before the model was checked")

    monkeypatch.setattr(loaders, "load_task_data", never)
    with pytest.raises(ModelError, match=r"no-tokenizer: no tokenizer files"):
        run_benchmark(str(no_tok), ["pawsx_es"], seeds=1, results_dir=tmp_path / "r")
    (no_tok / "config.json").write_bytes(b"\x00\xff\xfe binary")
    shutil.copy(out / "vocab.txt", no_tok / "vocab.txt")
    with pytest.raises(ModelError, match=r"no-tokenizer/config.json: not a text JSON file"):
        run_benchmark(str(no_tok), ["pawsx_es"], seeds=1, results_dir=tmp_path / "r")
    (no_tok / "config.json").write_text('{"model_type": "bert",\n')
    with pytest.raises(ModelError, match=r"no-tokenizer/config.json:2: invalid JSON"):
        run_benchmark(str(no_tok), ["pawsx_es"], seeds=1, results_dir=tmp_path / "r")
