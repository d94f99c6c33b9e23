"""The model registry (baselines with Hub ids) and resolving ``--model`` to something loadable.

``--model`` is a registry name, a Hub id (any id ``huggingface_hub`` accepts: ``owner/name`` or an
org-less ``xlm-roberta-base``), or a local Hugging Face directory (our exported checkpoints:
config.json + flax_model.msgpack + tokenizer files, optionally the export info
``bertin_bench.exports.EXPORT_INFO`` with ``tokens_seen``).

:func:`resolve_model` finds everything a run loads *before* any task data is read, so a wrong model
fails in seconds: the files (a Hub model's snapshot in the Hugging Face cache, downloaded when the Hub
is reachable), config.json, tokenizer files and one set of weights. Weights are taken in this order:
Flax (``flax_model.msgpack``), ``model.safetensors`` (converted to Flax without PyTorch), then
``pytorch_model.bin`` (needs the ``torch`` extra); ``--from-pt`` prefers the PyTorch-format ones.

Identity (what a result pins): a local directory by its content hash, so two checkpoints saved to the
same path are never confused; a Hub model by its id and the *commit* its snapshot resolved to, so a
changed snapshot is a different model (its runs are redone, never reused).

Reported scores
---------------
Published scores (the BERTIN card's final Tables 3 and 4, the BETO README, PlanTL's MarIA table),
each with its split, protocol and source, live in :mod:`benchmark.reported`; the leaderboard reads
them from there. The per-revision card tables kept below are the card's history (July 2021).
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
    # The Hub revision runs use (a commit pins it; `bench run --revision` overrides). None: the
    # repository's main branch, resolved to its commit at run time and recorded. No entry is pinned
    # yet: a pin must be a commit read from the Hub, and none could be read from here.
    revision: str | None = None
    family: str = "roberta"
    description: str = ""
    from_pt: bool = False  # prefer the PyTorch-format weights even when Flax ones exist
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
# Multilingual models beat the Spanish monolingual ones in Agerri & Agirre (2023), so a Spanish
# leaderboard without XLM-R is incomplete. No score of it on these tasks and settings was found in
# a source we could read; its reported rows are left out rather than guessed.
register(ModelSpec("xlm-roberta-base", "FacebookAI/xlm-roberta-base", family="xlm-roberta",
                   description="XLM-RoBERTa base, multilingual (CC-100, 100 languages; SentencePiece)"))


class ModelError(ValueError):
    """A model that cannot be used: the message says why and what to do."""


TORCH_HINT = "pip install 'bertin-bench[torch]'"

# Weight files by format, in the order they are preferred (see the module docstring).
WEIGHT_FILES = {
    "flax": ("flax_model.msgpack", "flax_model.msgpack.index.json"),
    "safetensors": ("model.safetensors", "model.safetensors.index.json"),
    "pt": ("pytorch_model.bin", "pytorch_model.bin.index.json"),
}
FLAX_WEIGHTS = WEIGHT_FILES["flax"]
PT_WEIGHTS = WEIGHT_FILES["pt"] + WEIGHT_FILES["safetensors"]
# A fast tokenizer can be built from any one of these sets of files.
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"),
                   ("sentencepiece.bpe.model",), ("spiece.model",), ("tokenizer.model",))
# What a run needs from a Hub repository besides one set of weights (downloaded when online).
HUB_SMALL_FILES = ("config.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   *{f for files in TOKENIZER_FILES for f in files})


@dataclass
class ResolvedModel:
    """What ``--model`` points at, with everything a result records about it."""

    name: str  # display name (registry name, Hub id, or the local dir's name / --model-name)
    source: str  # "registry" | "hub" | "local"
    path_or_id: str  # the directory from_pretrained reads (a Hub model's snapshot in the cache)
    hub_id: str | None = None
    # The commit the Hub snapshot resolved to: what was scored, and what the resume rule compares
    # (``results.RunKey``), so a changed snapshot is a different model.
    revision: str | None = None
    requested_revision: str | None = None  # what was asked for (registry pin or --revision); None: main
    local_path: str | None = None
    content_hash: str | None = None
    family: str | None = None
    weights: str = "flax"  # "flax" | "safetensors" | "pt": the format loaded
    weights_file: str | None = None
    pretraining_tokens: int | None = None
    pretraining: dict | None = None
    added_post_processor: bool = False  # the tokenizer added no special tokens; we attached them

    @property
    def commit(self) -> str | None:
        return self.revision if self.source != "local" else None

    @property
    def from_pt(self) -> bool:
        """PyTorch-format weights (safetensors or pytorch_model.bin), converted to Flax at load time."""
        return self.weights != "flax"

    def record(self) -> dict[str, Any]:
        """The ``model`` record of a result (``benchmark.results.ModelRecord``); ``revision`` is the
        resolved commit for Hub models."""
        return {
            "name": self.name, "source": self.source, "hub_id": self.hub_id,
            "revision": self.revision, "requested_revision": self.requested_revision,
            "local_path": self.local_path, "content_hash": self.content_hash, "family": self.family,
            "from_pt": self.from_pt, "weights": self.weights, "pretraining_tokens": self.pretraining_tokens,
            "added_post_processor": self.added_post_processor,
        }


def resolve_model(model: str | os.PathLike, model_name: str | None = None, from_pt: bool | None = None,
                  revision: str | None = None) -> ResolvedModel:
    """Resolve a registry name, a local directory or a Hub id (in that order) to files on disk,
    checking config, tokenizer and weights; ``revision`` overrides the registry's pin."""
    text = os.fspath(model)
    if text in MODELS:
        spec = MODELS[text]
        return _resolve_hub(spec.hub_id, model_name or spec.name, "registry", revision or spec.revision,
                            spec.from_pt if from_pt is None else from_pt)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        if revision:
            raise ModelError(f"--revision {revision}: {path} is a local directory; revisions are for Hub models")
        return _resolve_local(path, model_name, from_pt)
    if not _is_hub_id(text):
        raise ModelError(_unknown(text, "not a registry name, an existing directory, or a Hub id"))
    return _resolve_hub(text, model_name or text, "hub", revision, bool(from_pt))


def _is_hub_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _unknown(text: str, why: str) -> str:
    import difflib

    close = difflib.get_close_matches(text, list(MODELS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown model {text!r}: {why}.{hint} Registry: {', '.join(MODELS)} (`bench ls models`)"


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def _resolve_hub(hub_id: str, name: str, source: str, revision: str | None, from_pt: bool) -> ResolvedModel:
    snapshot = _hub_snapshot(hub_id, revision, from_pt, name)
    files = _check_files(snapshot, f"{hub_id} (Hub cache snapshot {snapshot})", from_pt)
    config = _read_config(snapshot)
    return ResolvedModel(
        name, source, str(snapshot), hub_id=hub_id, revision=snapshot.name, requested_revision=revision,
        family=config.get("model_type") or (MODELS[name].family if source == "registry" and name in MODELS else None),
        weights=files[0], weights_file=str(files[1]),
    )


def _hub_snapshot(hub_id: str, revision: str | None, from_pt: bool, name: str) -> Path:
    """The snapshot directory of ``hub_id`` at ``revision`` in the Hugging Face cache (its name is
    the commit), completed from the Hub when it lacks what a run needs and the Hub is reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    at = f"@{revision}" if revision else ""
    cached = None
    try:
        cached = Path(snapshot_download(hub_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        pass
    if cached is not None and _complete(cached):
        return cached
    if _hub_offline():
        state = "is incomplete in" if cached is not None else "is not in"
        why = (f"{hub_id}{at} {state} the Hugging Face cache and the Hub is disabled "
               "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE=1)")
        if cached is None and name not in MODELS and name == hub_id:
            raise ModelError(_unknown(name, f"not a registry name, an existing directory, or a cached Hub model: {why}"))
        raise ModelError(f"{name}: {why}. Download it where the Hub is reachable (`huggingface-cli download "
                         f"{hub_id}`), or pass a local model directory.")
    try:
        from huggingface_hub import HfApi

        listed = set(HfApi().list_repo_files(hub_id, revision=revision))
        wanted = [f for f in HUB_SMALL_FILES if f in listed]
        fmt = _pick_weights(lambda f: f in listed, from_pt)
        if fmt is not None:
            wanted += [f for f in WEIGHT_FILES[fmt] if f in listed]
        # Only the files a run reads: a repository often holds the same weights in 3-4 formats.
        return Path(snapshot_download(hub_id, revision=revision, allow_patterns=wanted))
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise ModelError(_unknown(name, f"no Hub model {hub_id}{at} ({type(err).__name__})")) from None
    except (HfHubHTTPError, OSError) as err:
        raise ModelError(f"cannot load {hub_id!r}{at} from the Hugging Face Hub (it is not a local directory "
                         f"either): {str(err).splitlines()[0] if str(err) else type(err).__name__}. Is the Hub "
                         "reachable? Offline, download the model elsewhere and pass its local directory.") from None


def _complete(directory: Path) -> bool:
    has = lambda f: (directory / f).is_file()  # noqa: E731
    return has("config.json") and _pick_weights(has, False) is not None and any(all(has(f) for f in s) for s in TOKENIZER_FILES)


def _pick_weights(has, from_pt: bool) -> str | None:
    """The weight format to load from a directory or repository (``has(filename)``), or None."""
    order = ("safetensors", "pt", "flax") if from_pt else ("flax", "safetensors", "pt")
    return next((fmt for fmt in order if any(has(f) for f in WEIGHT_FILES[fmt])), None)


def _check_files(directory: Path, where: str, from_pt: bool) -> tuple[str, Path]:
    """Check config and weights are present (the tokenizer: :func:`check_tokenizer_files`);
    returns (weight format, weight file)."""
    has = lambda f: (directory / f).is_file()  # noqa: E731
    if not has("config.json"):
        raise ModelError(f"{where}: no config.json; not a Hugging Face model directory (export the checkpoint first)")
    fmt = _pick_weights(has, from_pt)
    if fmt is None:
        raise ModelError(f"{where}: no weights (expected {FLAX_WEIGHTS[0]}, {WEIGHT_FILES['safetensors'][0]} "
                         f"or {WEIGHT_FILES['pt'][0]})")
    weights = next(directory / f for f in WEIGHT_FILES[fmt] if has(f))
    if weights.name.endswith(".index.json") and fmt != "flax":
        raise ModelError(f"{weights}: sharded {fmt} weights cannot be converted to Flax by transformers "
                         "4.57; save the model unsharded, or with Flax weights")
    if fmt == "pt":
        _require_torch(f"{where} has only PyTorch weights ({weights.name})")
    return fmt, weights


def check_tokenizer_files(directory: str | Path, where: str) -> None:
    """A fast tokenizer needs one of ``TOKENIZER_FILES``; without them transformers fails with a
    TypeError deep inside, so say what is missing instead."""
    directory = Path(directory)
    if not any(all((directory / f).is_file() for f in files) for files in TOKENIZER_FILES):
        raise ModelError(
            f"{where}: no tokenizer files (tokenizer.json, vocab.txt, vocab.json + merges.txt, or a sentencepiece "
            "model): copy the tokenizer the model was trained with into it")


def _read_config(directory: Path) -> dict:
    try:
        config = read_json(directory / "config.json")
    except UnicodeDecodeError as err:
        raise ModelError(f"{directory / 'config.json'}: not a text JSON file ({err.reason} at byte {err.start})") from None
    except ValueError as err:  # read_json names the file and line
        raise ModelError(str(err)) from None
    if not isinstance(config, dict):
        raise ModelError(f"{directory / 'config.json'}: expected a JSON object")
    return config


# The files that define what a local model computes. Not the export info (it records dates), not
# other weight formats than the one loaded (adding model.safetensors to a Flax export later does not
# make it another model), not a README or logs.
_DEFINING_FILES = {"config.json", "tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model"}


def model_content_hash(path: Path, weights_file: Path) -> str:
    """A local model's identity: the content of its config, tokenizer and the weight file loaded,
    so two exports of one checkpoint (which differ only in their export dates) are one model."""
    return hash_dir(path, include=_DEFINING_FILES | {Path(weights_file).relative_to(path).as_posix()})


def _resolve_local(path: Path, model_name: str | None, from_pt: bool | None) -> ResolvedModel:
    if not path.is_dir():
        raise ModelError(f"{path}: model directory does not exist")
    fmt, weights = _check_files(path, str(path), bool(from_pt))
    config = _read_config(path)
    try:
        info = read_export_info(path)  # our exports carry their pre-training record; others have none
    except ValueError as err:  # read_json names the file and line
        raise ModelError(str(err)) from None
    return ResolvedModel(
        model_name or path.resolve().name, "local", str(path.resolve()), local_path=str(path.resolve()),
        content_hash=model_content_hash(path, weights), family=config.get("model_type"), weights=fmt,
        weights_file=str(weights),
        pretraining_tokens=(info or {}).get("tokens_seen"), pretraining=info,
    )


def _require_torch(what: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ModelError(
            f"{what}: loading them into Flax needs PyTorch. Install the optional extra: {TORCH_HINT} "
            "(the PyTorch weights are then used automatically; --from-pt prefers them where Flax weights exist too)"
        ) from None


def _quiet_transformers():
    """transformers' expected warnings (a dropped MLM head, a freshly initialised task head) kept
    out of the user's way; errors still show."""
    import contextlib

    import transformers

    @contextlib.contextmanager
    def quiet():
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            yield
        finally:
            transformers.logging.set_verbosity(verbosity)

    return quiet()


def load_tokenizer(resolved: ResolvedModel):
    """A fast tokenizer; RoBERTa-family byte-level BPE needs add_prefix_space for pre-split words."""
    check_tokenizer_files(resolved.path_or_id, resolved.local_path or f"{resolved.hub_id} (Hub cache snapshot {resolved.path_or_id})")
    from transformers import AutoConfig, AutoTokenizer

    kwargs: dict[str, Any] = {}
    try:
        config = AutoConfig.from_pretrained(resolved.path_or_id)
        if config.model_type in ("roberta", "longformer", "bart", "deberta"):
            kwargs["add_prefix_space"] = True
        with _quiet_transformers():
            tok = AutoTokenizer.from_pretrained(resolved.path_or_id, use_fast=True, **kwargs)
    except (OSError, ValueError, TypeError) as err:  # a broken or foreign tokenizer/config file
        raise ModelError(_load_failure(resolved, err)) from err
    if isinstance(tok, bool) or not getattr(tok, "is_fast", False):
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
    """A Flax model with a fresh classification head for the task's labels (seeded), from exactly
    the weight file resolution chose (transformers alone would take a Flax file over --from-pt)."""
    from transformers import AutoConfig, FlaxAutoModelForSequenceClassification, FlaxAutoModelForTokenClassification

    from benchmark.tasks import TOKEN

    cls = FlaxAutoModelForTokenClassification if task_type == TOKEN else FlaxAutoModelForSequenceClassification
    if resolved.weights == "pt":
        _require_torch(f"{resolved.name} has only PyTorch weights")
    weights = resolved.weights_file or resolved.path_or_id
    try:
        config = AutoConfig.from_pretrained(resolved.path_or_id, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                            label2id={l: i for i, l in enumerate(labels)})
        with _quiet_transformers():
            return cls.from_pretrained(weights, config=config, seed=seed, from_pt=resolved.from_pt)
    except OSError as err:
        raise ModelError(_load_failure(resolved, err)) from err
    except ValueError as err:
        raise ModelError(f"{resolved.name}: cannot build a {task_type} model: {err}") from err


def _load_failure(resolved: ResolvedModel, err: Exception) -> str:
    where = resolved.local_path or f"{resolved.hub_id} ({resolved.path_or_id})"
    return f"{where}: cannot load: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
