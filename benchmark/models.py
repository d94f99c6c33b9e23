"""The model registry (baselines with Hub ids) and resolving ``--model`` to something loadable.

``--model`` is a registry name, a Hub id, or a local Hugging Face directory (our exported
checkpoints: config.json + flax_model.msgpack + tokenizer files, optionally the export info
``bertin_bench.exports.EXPORT_INFO`` with ``tokens_seen``). Local directories are identified in results by
their content hash, so two different checkpoints saved to the same path are never confused.

Reported scores
---------------
The BERTIN model card (huggingface.co/bertin-project/bertin-roberta-base-spanish, README) changed
many times in July 2021. The only tables whose rows we could read in full (through the Hub's commit
pages, offline search) are cited below with their exact commit; the final card's tables (with
MLDoc) could not be retrieved, so MLDoc and the rows we could not read are *left out*, not guessed.
Scores marked ``repetition`` carry the card's ``*`` ("results marked with * indicate a repetition");
PAWS-X 0.5765 is the majority-class accuracy, i.e. a failed fine-tuning run, as the card shows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertin_bench.exports import read_export_info
from bertin_bench.io import read_json
from bertin_bench.provenance import hash_dir
from bertin_bench.tokenization import ensure_special_tokens

log = logging.getLogger(__name__)

CARD = "https://huggingface.co/bertin-project/bertin-roberta-base-spanish"
# Table 3 at this revision: POS, NER, PAWS-X, XNLI-256 and XNLI-512 columns.
SRC_T3 = CARD + "/commit/19a71278915ecc46a38e84acc6dffc752ea02a9a"
# Table 4 at this revision: seq length 512, batch 16, 5 epochs (caption of that revision).
SRC_T4 = CARD + "/commit/0750d4e6a324fa4a151ff024cad08d2487f8da35"


@dataclass(frozen=True)
class Reported:
    """A published score: task, metric values as printed, the setting and where it was printed."""

    task: str
    metrics: dict[str, float]
    table: str  # one leaderboard row per (model, table)
    source: str
    repetition: bool = False  # the card's "*": a repeated run


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hub_id: str
    revision: str | None = None
    family: str = "roberta"
    description: str = ""
    from_pt: bool = False  # only PyTorch weights on the Hub: needs the `torch` extra
    reported: tuple[Reported, ...] = field(default_factory=tuple)


def _t3(pos, ner, pawsx, xnli256, xnli512, pawsx_rep=False, xnli512_rep=False):
    """Table 3 of revision 19a7127: POS (F1/Acc), NER (F1/Acc), PAWS-X (Acc), XNLI-256, XNLI-512."""
    setting = "card Table 3 @19a7127 (XNLI max len 256)"
    out = [
        Reported("pos_conll2002_es", {"seqeval_f1": pos[0], "accuracy": pos[1]}, setting, SRC_T3),
        Reported("ner_conll2002_es", {"f1": ner[0], "accuracy": ner[1]}, setting, SRC_T3),
        Reported("pawsx_es", {"accuracy": pawsx}, setting, SRC_T3, repetition=pawsx_rep),
    ]
    if xnli256 is not None:
        out.append(Reported("xnli_es", {"accuracy": xnli256}, setting, SRC_T3))
    if xnli512 is not None:
        out.append(Reported("xnli_es", {"accuracy": xnli512}, "card Table 3 @19a7127 (XNLI max len 512)", SRC_T3, repetition=xnli512_rep))
    return out


def _t4(pos, ner, pawsx, xnli, pawsx_rep=True):
    """Table 4 of revision 0750d4e: seq length 512, batch 16, 5 epochs."""
    setting = "card Table 4 @0750d4e (seq 512)"
    return [
        Reported("pos_conll2002_es", {"seqeval_f1": pos[0], "accuracy": pos[1]}, setting, SRC_T4),
        Reported("ner_conll2002_es", {"f1": ner[0], "accuracy": ner[1]}, setting, SRC_T4),
        Reported("pawsx_es", {"accuracy": pawsx}, setting, SRC_T4, repetition=pawsx_rep),
        Reported("xnli_es", {"accuracy": xnli}, setting, SRC_T4),
    ]


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


register(ModelSpec("beto", "dccuchile/bert-base-spanish-wwm-cased", family="bert",
                   description="BETO, Spanish BERT base (whole-word masking, cased)",
                   reported=(*_t3((0.9642, 0.9700), (0.8579, 0.9783), 0.8720, 0.8186, 0.8012, pawsx_rep=True),
                             *_t4((0.9639, 0.9693), (0.8596, 0.9790), 0.8720, 0.8012))))
register(ModelSpec("roberta-bne", "PlanTL-GOB-ES/roberta-base-bne", family="roberta",
                   description="BSC RoBERTa-BNE base (the card's BSC-BNE: BSC-TeMU/roberta-base-bne, renamed)",
                   reported=tuple(_t3((0.9659, 0.9707), (0.8700, 0.9807), 0.5765, 0.8178, 0.3333, pawsx_rep=True, xnli512_rep=True))))
register(ModelSpec("mbert", "bert-base-multilingual-cased", family="bert",
                   description="multilingual BERT base, cased",
                   reported=tuple(_t3((0.9629, 0.9687), (0.8539, 0.9779), 0.5765, 0.7852, 0.7606, pawsx_rep=True))))
register(ModelSpec("bertin-roberta-base", "bertin-project/bertin-roberta-base-spanish", family="roberta",
                   description="BERTIN (the card's 'Beta' in the July 2021 tables: the first release of this repository)",
                   reported=tuple(_t3((0.9638, 0.9690), (0.8725, 0.9812), 0.5765, None, 0.7751, pawsx_rep=True, xnli512_rep=True))))
register(ModelSpec("bertin-random", "bertin-project/bertin-base-random", family="roberta",
                   description="BERTIN base, random sampling of mC4-es, seq 128",
                   reported=(*_t3((0.9656, 0.9704), (0.8704, 0.9807), 0.8800, 0.7745, 0.7795, pawsx_rep=True),
                             *_t4((0.9651, 0.9700), (0.8638, 0.9802), 0.8800, 0.7795))))
register(ModelSpec("bertin-stepwise", "bertin-project/bertin-base-stepwise", family="roberta",
                   description="BERTIN base, stepwise perplexity sampling, seq 128",
                   reported=tuple(_t4((0.9642, 0.9693), (0.8726, 0.9818), 0.8825, 0.7799))))
register(ModelSpec("bertin-gaussian", "bertin-project/bertin-base-gaussian", family="roberta",
                   description="BERTIN base, Gaussian perplexity sampling, seq 128",
                   reported=tuple(_t4((0.9644, 0.9692), (0.8779, 0.9820), 0.8875, 0.7843))))
register(ModelSpec("bertin-random-512", "bertin-project/bertin-base-random-exp-512seqlen", family="roberta",
                   description="BERTIN base, random sampling, continued at seq 512"))
register(ModelSpec("bertin-gaussian-512", "bertin-project/bertin-base-gaussian-exp-512seqlen", family="roberta",
                   description="BERTIN base, Gaussian sampling, continued at seq 512"))


class ModelError(ValueError):
    """A model that cannot be used: the message says why and what to do."""


@dataclass
class ResolvedModel:
    """What ``--model`` points at, with everything a result records about it."""

    name: str  # display name (registry name, Hub id, or the local dir's name / --model-name)
    source: str  # "registry" | "hub" | "local"
    path_or_id: str  # what from_pretrained gets
    hub_id: str | None = None
    revision: str | None = None
    local_path: str | None = None
    content_hash: str | None = None
    family: str | None = None
    from_pt: bool = False
    pretraining_tokens: int | None = None
    pretraining: dict | None = None
    added_post_processor: bool = False  # the tokenizer added no special tokens; we attached them

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "hub_id": self.hub_id, "revision": self.revision,
            "local_path": self.local_path, "content_hash": self.content_hash, "family": self.family,
            "from_pt": self.from_pt, "pretraining_tokens": self.pretraining_tokens,
            "added_post_processor": self.added_post_processor,
        }


FLAX_WEIGHTS = ("flax_model.msgpack", "flax_model.msgpack.index.json")
PT_WEIGHTS = ("pytorch_model.bin", "model.safetensors", "pytorch_model.bin.index.json", "model.safetensors.index.json")


def resolve_model(model: str | os.PathLike, model_name: str | None = None, from_pt: bool | None = None) -> ResolvedModel:
    """Resolve a registry name, a local directory or a Hub id (in that order)."""
    text = os.fspath(model)
    if text in MODELS:
        spec = MODELS[text]
        return ResolvedModel(model_name or spec.name, "registry", spec.hub_id, hub_id=spec.hub_id,
                             revision=spec.revision, family=spec.family,
                             from_pt=spec.from_pt if from_pt is None else from_pt)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        return _resolve_local(path, model_name, from_pt)
    if "/" in text or text in {"bert-base-multilingual-cased"}:
        return ResolvedModel(model_name or text, "hub", text, hub_id=text, from_pt=bool(from_pt))
    raise ModelError(
        f"unknown model {text!r}: not a registry name, an existing directory, or a Hub id (owner/name). "
        f"Registry: {', '.join(MODELS)}"
    )


def _resolve_local(path: Path, model_name: str | None, from_pt: bool | None) -> ResolvedModel:
    if not path.is_dir():
        raise ModelError(f"{path}: model directory does not exist")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: no config.json; not a Hugging Face model directory (export the checkpoint first)")
    has_flax = any((path / f).is_file() for f in FLAX_WEIGHTS)
    has_pt = any((path / f).is_file() for f in PT_WEIGHTS)
    if not has_flax and not has_pt:
        raise ModelError(f"{path}: no weights (expected {FLAX_WEIGHTS[0]}, or PyTorch {PT_WEIGHTS[0]}/{PT_WEIGHTS[1]} with --from-pt)")
    use_pt = bool(from_pt) or not has_flax
    try:
        info = read_export_info(path)  # our exports carry their pre-training record; others have none
        config = read_json(path / "config.json")
    except ValueError as err:  # read_json names the file and line
        raise ModelError(str(err)) from None
    return ResolvedModel(
        model_name or path.resolve().name, "local", str(path.resolve()), local_path=str(path.resolve()),
        content_hash=hash_dir(path), family=config.get("model_type"), from_pt=use_pt,
        pretraining_tokens=(info or {}).get("tokens_seen"), pretraining=info,
    )


def _require_torch(name: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ModelError(
            f"{name} has only PyTorch weights: loading them into Flax needs PyTorch. "
            "Install the optional extra: pip install 'bertin-bench[torch]'"
        ) from None


def load_tokenizer(resolved: ResolvedModel):
    """A fast tokenizer; RoBERTa-family byte-level BPE needs add_prefix_space for pre-split words."""
    from transformers import AutoConfig, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if resolved.revision:
        kwargs["revision"] = resolved.revision
    try:
        config = AutoConfig.from_pretrained(resolved.path_or_id, **kwargs)
        if config.model_type in ("roberta", "longformer", "bart", "deberta"):
            kwargs["add_prefix_space"] = True
        tok = AutoTokenizer.from_pretrained(resolved.path_or_id, use_fast=True, **kwargs)
    except OSError as err:
        raise ModelError(_load_failure(resolved, err)) from err
    if not tok.is_fast:
        raise ModelError(f"{resolved.name}: needs a fast (Rust) tokenizer for word alignment; got {type(tok).__name__}")
    if ensure_special_tokens(tok, config.model_type):  # BERTIN's tokenizer.json (see bertin_bench.tokenization)
        resolved.added_post_processor = True
        log.warning("%s: the tokenizer adds no special tokens (tokenizer.json has no post-processor); "
                    "adding %s ... %s as the model family expects", resolved.name, tok.cls_token, tok.sep_token)
    return tok, config


def check_compatible(resolved: ResolvedModel, tokenizer, config) -> None:
    """Refuse a tokenizer whose ids the model cannot embed: JAX clamps out-of-range gathers, so a
    mismatch would silently train on wrong embeddings instead of failing."""
    if len(tokenizer) > config.vocab_size:
        raise ModelError(
            f"{resolved.name}: tokenizer/model mismatch: the tokenizer has {len(tokenizer)} tokens but the "
            f"model's vocab_size is {config.vocab_size} (were the tokenizer files copied from another model?)"
        )
    if tokenizer.pad_token_id is None:
        raise ModelError(f"{resolved.name}: the tokenizer has no pad token")
    if config.pad_token_id is not None and config.pad_token_id != tokenizer.pad_token_id:
        raise ModelError(
            f"{resolved.name}: tokenizer/model mismatch: pad id {tokenizer.pad_token_id} in the tokenizer, "
            f"{config.pad_token_id} in config.json"
        )


def load_model(resolved: ResolvedModel, task_type: str, labels: tuple[str, ...], seed: int):
    """A Flax model with a fresh classification head for the task's labels (seeded)."""
    from transformers import FlaxAutoModelForSequenceClassification, FlaxAutoModelForTokenClassification

    from benchmark.tasks import TOKEN

    cls = FlaxAutoModelForTokenClassification if task_type == TOKEN else FlaxAutoModelForSequenceClassification
    if resolved.from_pt:
        _require_torch(resolved.name)
    kwargs: dict[str, Any] = dict(
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        seed=seed, from_pt=resolved.from_pt,
    )
    if resolved.revision:
        kwargs["revision"] = resolved.revision
    try:
        # The checkpoint's own head (MLM) is dropped and a new task head is initialised: the
        # warning transformers logs about it is expected, so keep it out of the user's way.
        import transformers

        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            return cls.from_pretrained(resolved.path_or_id, **kwargs)
        finally:
            transformers.logging.set_verbosity(verbosity)
    except OSError as err:
        raise ModelError(_load_failure(resolved, err)) from err
    except ValueError as err:
        raise ModelError(f"{resolved.name}: cannot build a {task_type} model: {err}") from err


def _load_failure(resolved: ResolvedModel, err: Exception) -> str:
    if resolved.source == "local":
        return f"{resolved.local_path}: cannot load: {err}"
    offline = any(os.environ.get(v) == "1" for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    hint = (" The Hugging Face Hub is disabled (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE=1)." if offline
            else " Is the Hub reachable? Offline, download the model elsewhere and pass its local directory.")
    return (f"cannot load {resolved.hub_id!r} from the Hugging Face Hub (it is not a local directory either): "
            f"{str(err).rstrip('.')}.{hint}")
