"""Result files: ``FinetuneResult`` is the one owner of the results schema.

One typed object builds a run's record (:meth:`FinetuneResult.from_run`), validates it, saves it
(:meth:`~FinetuneResult.to_disk`, atomic) and loads it back (:meth:`~FinetuneResult.from_disk`,
upgrading files of older schema versions first), the way MTEB's ``TaskResult`` owns its files. The
field declarations below are the schema: their types drive validation, their ``doc`` metadata is
the text of ``benchmark/RESULTS_SCHEMA.md`` (``benchmark.schema_doc``; a test keeps the committed
file equal to it), so the code, the checks and the document cannot drift apart.

Layout: ``<results_dir>/runs/<model-slug>/<task>/seed<N>.json`` (one file per model, task, seed);
``<results_dir>/leaderboard.{csv,md}`` and ``<results_dir>/compare/`` are derived from these files
only, read through :func:`iter_results`.

Python: ``python -m benchmark.schema_doc`` rewrites ``benchmark/RESULTS_SCHEMA.md`` after a schema change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from bertin_bench.io import read_json, write_json_atomic

SCHEMA_VERSION = 2
KIND = "bertin-bench/finetune-result"

log = logging.getLogger(__name__)


# A display name whose file name is the name itself (``/`` -> ``--``): lowercase, one optional
# ``/``, no ``--`` and no leading/trailing ``-``/``.`` of its own. That mapping is one-to-one, and
# it is case-proof (macOS and Windows fold case), so two such names never share a directory.
_PLAIN_NAME = re.compile(r"(?!.*--)[a-z0-9](?:[a-z0-9._-]*[a-z0-9_])?(?:/[a-z0-9](?:[a-z0-9._-]*[a-z0-9_])?)?")


def slug(name: str) -> str:
    """A file-system safe model name, one per display name.

    ``bertin-project/bertin-base-gaussian`` -> ``bertin-project--bertin-base-gaussian``. Any other
    name ("Mi Modelo", "mi_modelo ", "PlanTL-GOB-ES/roberta-base-bne") gets the short hash of its
    exact text after an ``@`` (a character plain names never produce), because replacing characters
    alone would send "Mi Modelo" and "mi-modelo" to one directory, the second run then reading or
    overwriting the first one's results."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--")).strip("-.")
    if not out:
        raise ValueError(f"cannot make a file name from model name {name!r}")
    if _PLAIN_NAME.fullmatch(name):
        return out
    return f"{out.lower()}@{hashlib.sha256(name.encode('utf-8')).hexdigest()[:10]}"


def run_path(results_dir: str | Path, model_name: str, task: str, seed: int) -> Path:
    return Path(results_dir) / "runs" / slug(model_name) / task / f"seed{seed}.json"


def _doc(text: str, *, optional: bool = False):
    """A schema field: ``text`` goes to RESULTS_SCHEMA.md; ``optional`` fields may be absent from a
    file (and are left out when None)."""
    return field(default=None, metadata={"doc": text, "optional": True}) if optional else field(metadata={"doc": text})


# --- the schema ----------------------------------------------------------------------------------
# Field order is the key order of the files (they diff well); every field is required unless
# declared optional. ``float`` accepts ints too (JSON does not tell 1 from 1.0).


@dataclass(kw_only=True)
class ModelRecord:
    name: str = _doc("display name (registry name, Hub id, or `--model-name` / directory name)")
    source: str = _doc("`registry`, `hub` or `local`")
    hub_id: str | None = _doc("Hub id (required unless local)")
    revision: str | None = _doc("Hub models: the commit the cached snapshot resolved to (what was scored); older "
                                "results: the registry pin, when any")
    requested_revision: str | None = _doc("the revision asked for (`--revision`, the registry pin, or null for the "
                                          "default branch)", optional=True)
    weights: str | None = _doc("the weight file that was loaded: `flax`, `safetensors` or `pt`", optional=True)
    local_path: str | None = _doc("local directory (required when local)")
    content_hash: str | None = _doc("`bertin_bench.provenance.hash_dir` of the local directory (required when local)")
    family: str | None = _doc("`model_type` of config.json when local (`roberta`, `bert`), registry family otherwise")
    from_pt: bool = _doc("PyTorch-format weights (safetensors or .bin) converted at load time")
    pretraining_tokens: int | None = _doc("`tokens_seen` from the directory's export info (`bertin_bench.exports`; our checkpoints)")
    added_post_processor: bool = _doc("the tokenizer added no special tokens (BERTIN's tokenizer.json has none) and `<s> … </s>` was attached")
    pretraining: dict | None = _doc("the whole export info of our checkpoints", optional=True)


@dataclass(kw_only=True)
class TaskRecord:
    name: str = _doc("registry name (`name@version` identifies the data/labels/metric)")
    version: str = _doc("registry version")
    type: str = _doc("`token-classification` or `sequence-classification`")
    metric: str = _doc("metric family (`token`, `accuracy`)")
    main_score: str = _doc("the key of `test.metrics` that is the task's score")
    labels: list[str] = _doc("label list; predictions are indices into it")
    protocol: str = _doc("`official` (train/validation/test) or `dev-train` (no train split: train on validation minus a "
                         "held-out slice, select the epoch on that slice, score test)")
    data_source: str = _doc("`local` or `hub`")
    data: dict = _doc("local: `files.<split>` = {path, sha256, examples, rows, skipped_placeholder}; dev-train: `heldout` = "
                      "{fraction, by, train, validation}; Hub: `hub` = {id, config, revision}")
    sizes: dict = _doc("examples per split actually used: `train`, `validation`, `test`")
    limit_train: int | None = _doc("`--limit-train` (subsampled runs; the leaderboard gives them their own rows)")
    limit_eval: int | None = _doc("`--limit-eval`")
    hub_id: str | None = _doc("the task's Hub dataset id")
    hub_config: str | None = _doc("its config")
    hub_revision: str | None = _doc("the dataset revision the task pins (used when `data_source` is `hub`); "
                                    "null for results of schema 1")
    file_overrides: dict = _doc("local files replaced with `--set <split>_file=PATH`, split -> PATH as given ({} when none)")


@dataclass(kw_only=True)
class DevRecord:
    best_epoch: int = _doc("epoch with the best dev main score (first one on ties)")
    metrics: dict = _doc("dev metrics of that epoch")
    per_epoch: list[dict] = _doc("per epoch: `epoch`, `train_loss`, `train_seconds`, and every dev metric")


@dataclass(kw_only=True)
class TestRecord:
    __test__ = False  # not a pytest test class

    metrics: dict = _doc("test metrics of the best-dev-epoch parameters. Token tasks: `accuracy`, `f1`, `precision`, "
                         "`recall` (seqeval, micro, default mode), `seqeval_f1` (= `f1`, the name BERTIN's POS table "
                         "uses). Sequence tasks: `accuracy`, `macro_f1`")
    predictions: dict = _doc("gold and predicted label ids of every test example, for the paired bootstrap: `encoding` "
                             "(`\"zlib+base64 uint16 le\"`), `n`, `gold`, `pred`, and for token tasks `lengths` (words "
                             "per sentence; `gold`/`pred` are flattened word labels)")


@dataclass(kw_only=True)
class Timing:
    train_seconds: float = _doc("all epochs, compilation included")
    eval_seconds: float = _doc("dev and test prediction")
    examples_per_second: float = _doc("training")
    train_examples_seen: int = _doc("training examples over all epochs")
    steps: int = _doc("optimizer steps")
    n_devices: int = _doc("data-parallel devices")
    device_kind: str = _doc("`jax.devices()[0].device_kind`")


@dataclass(kw_only=True)
class Provenance:
    git_sha: str | None = _doc("commit of this code (null outside a git checkout)")
    date: str = _doc("when the run finished (ISO 8601)")
    python: str = _doc("Python version")
    platform: str = _doc("`platform.platform()`")
    packages: dict = _doc("versions of the packages that shape the numbers")


@dataclass(kw_only=True)
class FinetuneResult:
    """One fine-tuning run (model x task x seed): what was run, how, and what it scored."""

    schema_version: int = _doc(f"`{SCHEMA_VERSION}`")
    kind: str = _doc(f"`\"{KIND}\"`")
    model: ModelRecord = _doc("the model")
    task: TaskRecord = _doc("the task and the data used")
    seed: int = _doc("seed of the head initialisation, dropout and data order")
    hyperparameters: dict = _doc("`learning_rate`, `batch_size` (global), `epochs`, `max_length` (after clamping to the "
                                 "model's positions), `warmup_ratio`, `weight_decay`, `eval_batch_size`")
    dev: DevRecord = _doc("epoch selection")
    test: TestRecord = _doc("the score")
    main_score: float = _doc("`test.metrics[task.main_score]`")
    best_epoch: int = _doc("= `dev.best_epoch`")
    timing: Timing = _doc("cost of the run")
    truncation: dict = _doc("per split: `examples`, `truncated_examples` (longer than `max_length`); token tasks also "
                            "`words` and `unscored_words` (words whose first subword was cut: they get the fallback label "
                            "`O`, or the most frequent training label)")
    provenance: Provenance = _doc("`bertin_bench.provenance.environment()`")

    # --- building --------------------------------------------------------------------------------

    @classmethod
    def from_run(cls, *, model, spec, data, hp: dict, seed: int, out, device_kind: str, provenance: dict,
                 file_overrides: dict | None = None) -> "FinetuneResult":
        """The record of a finished run: ``model`` a ``models.ResolvedModel``, ``spec`` a
        ``tasks.TaskSpec``, ``data`` a ``loaders.TaskData``, ``out`` a ``finetune.FinetuneOutput``."""
        from benchmark.metrics import pack_predictions

        return cls(
            schema_version=SCHEMA_VERSION, kind=KIND,
            model=ModelRecord(**model.record(), pretraining=model.pretraining),
            task=TaskRecord(
                name=spec.name, version=spec.version, type=spec.task_type, metric=spec.metric,
                main_score=spec.main_score, labels=list(spec.labels), protocol=data.protocol, data_source=data.source,
                data={k: v for k, v in data.info.items() if k not in ("limit_train", "limit_eval")},
                sizes=data.sizes(), limit_train=data.info.get("limit_train"), limit_eval=data.info.get("limit_eval"),
                hub_id=spec.hub_id, hub_config=spec.hub_config, hub_revision=spec.hub_revision,
                file_overrides=dict(file_overrides or {}),
            ),
            seed=seed,
            hyperparameters=hp,
            dev=DevRecord(best_epoch=out.best_epoch, metrics=out.dev_metrics, per_epoch=out.dev_history),
            test=TestRecord(metrics=out.test_metrics, predictions=pack_predictions(spec.task_type, out.test_gold, out.test_pred)),
            main_score=out.test_metrics[spec.main_score],
            best_epoch=out.best_epoch,
            timing=Timing(
                train_seconds=round(out.train_seconds, 3), eval_seconds=round(out.eval_seconds, 3),
                examples_per_second=round(out.examples_per_second, 2), train_examples_seen=out.train_examples_seen,
                steps=out.steps, n_devices=out.n_devices, device_kind=device_kind,
            ),
            truncation=out.truncation,
            provenance=Provenance(**provenance),
        )

    # --- dict and disk ---------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, raw: dict, where: str = "result") -> "FinetuneResult":
        """Upgrade ``raw`` to the current schema, validate it, build the object (ValueError on errors)."""
        current = upgrade(raw, where)
        errors = validate_result(current)
        if errors:
            raise ValueError(f"{where}: invalid result: " + "; ".join(errors[:5]))
        return _build(cls, current)

    def errors(self) -> list[str]:
        return validate_result(self.to_dict())

    def to_disk(self, path: str | Path) -> Path:
        """Validate, then write atomically: an interrupted run never leaves a partial file."""
        errors = self.errors()
        if errors:
            raise ValueError(f"refusing to write an invalid result to {path}: " + "; ".join(errors))
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def from_disk(cls, path: str | Path) -> "FinetuneResult":
        return cls.from_dict(read_json(path), where=str(path))

    # --- what the leaderboard and the resume rule read -------------------------------------------

    @property
    def setting_key(self) -> str:
        """What must match for runs to be averaged: task version, protocol and subsampling."""
        t = self.task
        key = f"{t.name}@{t.version} {t.protocol}"
        if t.limit_train or t.limit_eval:
            key += f" limit(train={t.limit_train},eval={t.limit_eval})"
        return key

    @property
    def limits(self) -> tuple[int | None, int | None]:
        return self.task.limit_train, self.task.limit_eval

    def run_key(self) -> "RunKey":
        m, t = self.model, self.task
        return RunKey(model=(m.content_hash, m.hub_id, m.revision), task_version=t.version,
                      hyperparameters=self.hyperparameters, limits=self.limits, file_overrides=t.file_overrides)


@dataclass(frozen=True)
class RunKey:
    """Everything a run's numbers depend on that the user can change: an existing result counts as
    this run when its key (read from its recorded fields) equals the key of the run asked for.

    Derived from the fields the result records rather than stored as a separate hash
    (``bertin_bench.markers.stamp``): results written before this key existed carry those fields
    too, so they stay recognised as up to date, and there is no second copy that could disagree
    with what the file says."""

    model: tuple  # (content_hash, hub_id, revision)
    task_version: str
    hyperparameters: dict
    limits: tuple
    file_overrides: dict

    @classmethod
    def for_run(cls, model, spec, hp: dict, limits: tuple, file_overrides: dict | None = None) -> "RunKey":
        """The key of a run about to be made (``model`` a ``models.ResolvedModel``)."""
        return cls(model=(model.content_hash, model.hub_id, model.revision), task_version=spec.version,
                   hyperparameters=hp, limits=tuple(limits), file_overrides=dict(file_overrides or {}))

    def differences(self, wanted: "RunKey") -> list[str]:
        """What differs from ``wanted`` (empty: the same run), in words for the error message."""
        diffs = []
        if self.model != wanted.model:
            diffs.append("model content")
        if self.task_version != wanted.task_version:
            diffs.append(f"task version {self.task_version} -> {wanted.task_version}")
        if self.hyperparameters != wanted.hyperparameters:
            diffs.append("hyperparameters")
        if tuple(self.limits) != tuple(wanted.limits):
            diffs.append("limits")
        if self.file_overrides != wanted.file_overrides:
            diffs.append("data files")
        return diffs


def iter_results(results_dir: str | Path) -> Iterator[tuple[Path, FinetuneResult]]:
    """All results under ``results_dir/runs`` (sorted); an invalid file is an error, since a
    leaderboard silently missing a run would be a wrong number."""
    root = Path(results_dir) / "runs"
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*/seed*.json")):
        yield path, FinetuneResult.from_disk(path)


# --- model identity ---------------------------------------------------------------------------------
# A display name is what the user typed or the directory was called (two exports both named `hf`),
# so it cannot say which weights were scored. The leaderboard and `bench compare` key results by
# identity and use names only to print them.


def model_identity(result: "FinetuneResult | ModelRecord") -> str:
    """What was scored, as one string: ``local:<content hash>`` for a local directory,
    ``hub:<hub id>@<commit>`` for a Hub model (the commit resolved at load time when the result
    records one, else the revision asked for), ``hub:<hub id>`` when neither was recorded (older
    results: then two snapshots of one id cannot be told apart)."""
    m = result.model if isinstance(result, FinetuneResult) else result
    if m.source == "local" or (m.content_hash and not m.hub_id):
        return f"local:{m.content_hash}"
    revision = getattr(m, "resolved_revision", None) or m.revision
    return f"hub:{m.hub_id}@{revision}" if revision else f"hub:{m.hub_id}"


def short_identity(identity: str) -> str:
    """8 characters that tell identities apart in a display name: the start of the content hash or
    commit when there is one, else of the identity's own hash."""
    tail = identity.split("@", 1)[1] if identity.startswith("hub:") and "@" in identity else identity.split(":", 1)[-1]
    if not re.fullmatch(r"[0-9a-f]{8,}", tail):
        tail = hashlib.sha256(identity.encode("utf-8")).hexdigest()
    return tail[:8]


@dataclass
class ModelGroup:
    """The results of one model identity, under a display name no other identity uses."""

    name: str  # the recorded display name, with `#<short identity>` when another identity shares it
    identity: str
    results: list  # [FinetuneResult, ...] in the order given


def group_by_model(items: Iterable) -> dict[str, ModelGroup]:
    """Group results (``FinetuneResult`` or the ``(path, result)`` pairs of :func:`iter_results`) by
    model identity, keyed by a unique display name, in order of first appearance.

    Two identities under one recorded name both get ``name#<short identity>`` and a warning names
    them, rather than one row or one comparison silently mixing two models' runs."""
    by_identity: dict[tuple[str, str], ModelGroup] = {}
    for item in items:
        res = item[1] if isinstance(item, tuple) else item
        ident = model_identity(res)
        # Keyed by (name, identity): one model run under two names (a checkpoint scored as `a` and
        # as `b`) stays two entries, as the user named them; only one name over two identities is
        # split below.
        key = (res.model.name, ident)
        if key not in by_identity:
            by_identity[key] = ModelGroup(name=res.model.name, identity=ident, results=[])
        by_identity[key].results.append(res)
    names: dict[str, list[ModelGroup]] = {}
    for group in by_identity.values():
        names.setdefault(group.name, []).append(group)
    out: dict[str, ModelGroup] = {}
    for name, groups in names.items():
        if len(groups) > 1:
            for group in groups:
                group.name = f"{name}#{short_identity(group.identity)}"
            log.warning("%d different models are named %r (%s); shown as %s", len(groups), name,
                        ", ".join(g.identity for g in groups), ", ".join(g.name for g in groups))
        for group in groups:
            out[group.name] = group
    return out


# --- old versions ---------------------------------------------------------------------------------


def _v1_to_v2(raw: dict) -> dict:
    """Schema 2 added ``task.hub_revision`` (task specs pin their Hub dataset revision) and
    ``task.file_overrides`` (``--set <split>_file=``). A version-1 run used no override, and no pin:
    its Hub revision is whatever its ``task.data.hub`` recorded (null for local data)."""
    task = raw.get("task")
    if isinstance(task, dict):
        hub = task.get("data", {}).get("hub", {}) if isinstance(task.get("data"), dict) else {}
        task.setdefault("hub_revision", hub.get("revision") if isinstance(hub, dict) else None)
        task.setdefault("file_overrides", {})
    return {**raw, "schema_version": 2}


# Converters, one per version step: UPGRADES[n] turns a version-n dict into version n+1.
UPGRADES = {1: _v1_to_v2}


def upgrade(raw: Any, where: str = "result") -> dict:
    """A copy of ``raw`` in the current schema version (the file on disk is never rewritten)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a result must be a JSON object")
    version = raw.get("schema_version")
    if raw.get("kind") != KIND or not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{where}: not a {KIND} file (kind={raw.get('kind')!r}, schema_version={version!r})")
    if version > SCHEMA_VERSION:
        raise ValueError(f"{where}: schema_version {version} is newer than this bertin-bench reads ({SCHEMA_VERSION}); upgrade bertin-bench")
    out = _deep_copy(raw)
    while out["schema_version"] < SCHEMA_VERSION:
        step = UPGRADES.get(out["schema_version"])
        if step is None:
            raise ValueError(f"{where}: no converter from schema_version {out['schema_version']}")
        out = step(out)
    return out


def _deep_copy(obj):
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj


# --- validation -----------------------------------------------------------------------------------


def validate_result(result: dict) -> list[str]:
    """Schema errors of a current-version result dict (empty when valid): types from the field
    declarations, then the consistency rules below."""
    errors: list[str] = []
    _check(result, FinetuneResult, "result", errors)
    if errors:
        return errors
    if result["schema_version"] != SCHEMA_VERSION or result["kind"] != KIND:
        errors.append(f"result: kind/schema_version must be {KIND!r}/{SCHEMA_VERSION}")
    task, model = result["task"], result["model"]
    for rule, ok in _consistency(result, task, model):
        if not ok:
            errors.append(rule)
    return errors


def _consistency(result: dict, task: dict, model: dict):
    """(message, holds) for each rule; the messages are also the rules' text in RESULTS_SCHEMA.md."""
    preds = result["test"]["predictions"]
    main = task["main_score"]
    yield "result.model.source: must be registry, hub or local", model["source"] in ("registry", "hub", "local")
    yield ("result.model: a local model needs local_path and content_hash",
           model["source"] != "local" or bool(model["local_path"] and model["content_hash"]))
    yield "result.model: a registry/Hub model needs hub_id", model["source"] == "local" or bool(model["hub_id"])
    yield "result.task.protocol: must be official or dev-train", task["protocol"] in ("official", "dev-train")
    yield f"result.test.metrics: main score {main!r} missing", main in result["test"]["metrics"]
    if main in result["test"]["metrics"]:
        yield ("result.main_score: differs from test.metrics[main_score]",
               abs(result["test"]["metrics"][main] - result["main_score"]) <= 1e-12)
    yield "result.best_epoch: outside the epochs run", 1 <= result["best_epoch"] <= len(result["dev"]["per_epoch"])
    yield "result.best_epoch: differs from dev.best_epoch", result["best_epoch"] == result["dev"]["best_epoch"]
    for key in ("encoding", "n", "gold", "pred"):
        yield f"result.test.predictions.{key}: missing", key in preds
    yield "result.test.predictions.n: differs from task.sizes.test", preds.get("n") == task["sizes"].get("test")


CONSISTENCY_RULES = (
    "local models carry `local_path` and `content_hash`, others a `hub_id`; `model.source` is `registry`, `hub` or "
    "`local`; `task.protocol` is `official` or `dev-train`; `main_score` equals `test.metrics[task.main_score]`; "
    "`best_epoch` is within the epochs run and equals `dev.best_epoch`; `test.predictions` has `encoding`, `n`, "
    "`gold`, `pred`, and its `n` equals `task.sizes.test`"
)


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _split_optional(tp) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _type_name(tp) -> str:
    base, nullable = _split_optional(tp)
    origin = typing.get_origin(base) or base
    if dataclasses.is_dataclass(base) or origin is dict:
        name = "object"
    elif origin is list:
        args = typing.get_args(base)
        name = f"list[{_type_name(args[0])}]" if args else "list"
    elif base is float:
        name = "number"
    else:
        name = base.__name__
    return f"{name} or null" if nullable else name


def _check(value: Any, tp: Any, where: str, errors: list[str]) -> None:
    base, nullable = _split_optional(tp)
    if value is None:
        if not nullable:
            errors.append(f"{where}: must not be null")
        return
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object")
            return
        hints = _hints(base)
        names = set()
        for f in dataclasses.fields(base):
            names.add(f.name)
            if f.name not in value:
                if not f.metadata.get("optional"):
                    errors.append(f"{where}.{f.name}: missing")
                continue
            _check(value[f.name], hints[f.name], f"{where}.{f.name}", errors)
        for key in value:
            if key not in names:
                errors.append(f"{where}.{key}: unknown key (not in the schema)")
        return
    origin = typing.get_origin(base) or base
    allowed = (int, float) if base is float else (origin,)
    if isinstance(value, bool) and bool not in allowed:
        errors.append(f"{where}: expected {_type_name(base)}, got bool")
    elif not isinstance(value, allowed):
        errors.append(f"{where}: expected {_type_name(base)}, got {type(value).__name__}")
    elif origin is list and typing.get_args(base):
        for i, item in enumerate(value):
            _check(item, typing.get_args(base)[0], f"{where}[{i}]", errors)


def _build(cls, value: dict):
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        v = value.get(f.name)
        base, _ = _split_optional(hints[f.name])
        kwargs[f.name] = _build(base, v) if dataclasses.is_dataclass(base) and v is not None else v
    return cls(**kwargs)


def _to_dict(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if v is None and f.metadata.get("optional"):
            continue
        out[f.name] = _to_dict(v) if dataclasses.is_dataclass(v) else v
    return out


# --- the schema document --------------------------------------------------------------------------


def _rows(cls, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        base, _ = _split_optional(hints[f.name])
        if dataclasses.is_dataclass(base):
            yield from _rows(base, f"{prefix}{f.name}.")
            continue
        kind = _type_name(hints[f.name]) + (", optional" if f.metadata.get("optional") else "")
        yield f"{prefix}{f.name}", kind, f.metadata["doc"]


def schema_lines() -> list[str]:
    """The result-file part of benchmark/RESULTS_SCHEMA.md, generated from the field declarations
    (``benchmark.schema_doc`` adds the leaderboard's data dictionary and writes the file)."""
    lines = [
        f"# Result file schema (version {SCHEMA_VERSION})",
        "",
        "<!-- Generated by `python -m benchmark.schema_doc` from `benchmark/results.py` and "
        "`benchmark/leaderboard.py`; do not edit by hand. -->",
        "",
        "One JSON file per (model, task, seed): `results/runs/<model-slug>/<task>/seed<N>.json`, where",
        "`<model-slug>` is the model's display name with `/` replaced by `--` when the name is plain (lowercase",
        "letters, digits, `._-`, no `--`), else that text lowercased plus `@` and a 10-character hash of the exact",
        "name, so two display names never share a directory (`benchmark.results.slug`).",
        "`benchmark.results.FinetuneResult` owns the format: it builds a run's record, validates it, writes it",
        "atomically (temporary file + rename, only after validation, so an interrupted `bench run` never leaves",
        "a partial file) and reads it back; the leaderboard, `bench compare` and the CLI read results only",
        "through it.",
        "",
        "| key | type | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{key}` | {kind} | {doc} |" for key, kind, doc in _rows(FinetuneResult)]
    lines += [
        "",
        "Every key above is required (`or null`: it may be null; `optional`: it may be absent); a key not",
        "listed is an error. Consistency rules checked by `validate_result`: " + CONSISTENCY_RULES + ".",
        "",
        "Older files: `FinetuneResult.from_disk` upgrades a file of an older `schema_version` in memory, one",
        "converter per version step (`benchmark.results.UPGRADES`), and never rewrites it. Version 1 lacked",
        "`task.hub_revision` (read as the revision its `task.data.hub` recorded, null for local data) and",
        "`task.file_overrides` (read as `{}`).",
        "",
        "Resume: `bench run` skips a run whose file exists when its `RunKey` (model content hash, Hub id and",
        "revision; task version; hyperparameters; limits; file overrides, all read from the recorded fields)",
        "equals the run asked for.",
        "",
        "Decoding predictions: `benchmark.metrics.unpack_predictions(result.test.predictions)` returns",
        "`(gold, pred)` (lists of lists for token tasks).",
        "",
        "Model identity: the leaderboard and `bench compare` key results by `benchmark.results.model_identity`",
        "(`local:<content_hash>` for a local directory, `hub:<hub_id>@<commit>` for a Hub model), never by",
        "display name alone; two identities under one name are shown as `name#<8 characters of the hash or",
        "commit>`, with a warning (`benchmark.results.group_by_model`).",
    ]
    return lines
