"""The task registry: one declarative ``TaskSpec`` per benchmark task.

A spec says where the data comes from (Hub id + config, or a local loader over files in the data
directory), which columns hold text and labels, the label list, the metric and main score, and the
default fine-tuning hyperparameters (BERTIN's). Any change of data, labels or metric must bump
``version``: results record ``name@version`` and the leaderboard never averages across versions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TOKEN = "token-classification"
SEQUENCE = "sequence-classification"

# Protocols: how the splits used relate to the official ones. Results carry the protocol and the
# leaderboard shows it, so numbers from different protocols are never mixed silently.
OFFICIAL = "official"  # train on train, select the epoch on validation, score test
DEV_TRAIN = "dev-train"  # no train split: train on (most of) validation, select on a held-out slice, score test

# BERTIN's fine-tuning defaults (model card, "Downstream tasks"): lr 5e-5, batch 16, 5 epochs
# (XNLI 2), max length 128 (XNLI 256). Warmup is not stated there; 6% is RoBERTa's GLUE recipe.
BERTIN_DEFAULTS: dict[str, Any] = dict(
    learning_rate=5e-5, batch_size=16, epochs=5, max_length=128, warmup_ratio=0.06,
    weight_decay=0.0, eval_batch_size=64,
)

CONLL2002_NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
# The Spanish POS tag set of CoNLL-2002 as the Hub `conll2002` (config es) declares it; `DE` never
# occurs in the local train file but is part of the tag set.
CONLL2002_ES_POS_LABELS = (
    "AO", "AQ", "CC", "CS", "DA", "DE", "DD", "DI", "DN", "DP", "DT", "Faa", "Fat", "Fc", "Fd", "Fe",
    "Fg", "Fh", "Fia", "Fit", "Fp", "Fpa", "Fpt", "Fs", "Ft", "Fx", "Fz", "I", "NC", "NP", "P0", "PD",
    "PI", "PN", "PP", "PR", "PT", "PX", "RG", "RN", "SP", "VAI", "VAM", "VAN", "VAP", "VAS", "VMG",
    "VMI", "VMM", "VMN", "VMP", "VMS", "VSG", "VSI", "VSM", "VSN", "VSP", "VSS", "Y", "Z",
)
UPOS_LABELS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
    "PUNCT", "SCONJ", "SYM", "VERB", "X",
)
MLDOC_LABELS = ("CCAT", "ECAT", "GCAT", "MCAT")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: str
    task_type: str  # TOKEN | SEQUENCE
    labels: tuple[str, ...]
    metric: str  # "token" (accuracy + seqeval) | "accuracy"
    main_score: str  # key of the metrics dict reported as the task's score
    description: str
    # Hub source: dataset id, config, the pinned dataset revision (a commit, passed to
    # ``datasets.load_dataset(revision=...)`` and recorded in every result, as MTEB's task metadata
    # pins one: the Hub copy can change under the same id), and the column names there.
    hub_id: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None
    hub_splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"})
    # Local source: reader name (a key of ``benchmark.loaders.LOCAL_LOADERS``) and its files
    # (relative to the data directory) per split; a missing "train" means the dev-train protocol.
    # ``--set train_file=PATH`` (and validation_file, test_file) replaces one: ``with_files``.
    local_loader: str | None = None
    local_files: dict[str, str] = field(default_factory=dict)
    local_options: dict[str, Any] = field(default_factory=dict)
    text_columns: tuple[str, ...] = ("tokens",)  # one column (tokens/text) or a sentence pair
    label_column: str = "labels"
    defaults: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def hyperparameters(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """BERTIN defaults, then the task's own, then the user's overrides (checked by
        :func:`check_hyperparameters`: unknown keys and bad values refused, the key named)."""
        return {**BERTIN_DEFAULTS, **self.defaults, **check_hyperparameters(overrides)}

    def with_files(self, files: dict[str, str] | None) -> "TaskSpec":
        """This task reading ``files`` ({split: path, relative to the data directory or absolute})
        instead of its registered local files for those splits."""
        if not files:
            return self
        if self.local_loader is None:
            raise ValueError(f"task {self.name} has no local reader, so it takes no data files ({', '.join(FILE_KEYS)})")
        return dataclasses.replace(self, local_files={**self.local_files, **files})


# What each hyperparameter accepts: (type, lowest, highest, whether lowest itself is allowed).
# Checked when the command line is parsed, so `--set epochs=0` fails at once with the key named
# instead of an IndexError after the data has loaded.
HYPERPARAMETER_RANGES: dict[str, tuple[type, float, float | None, bool]] = {
    "learning_rate": (float, 0.0, None, False),
    "batch_size": (int, 1, None, True),
    "epochs": (int, 1, None, True),
    "max_length": (int, 8, None, True),
    "warmup_ratio": (float, 0.0, 1.0, True),
    "weight_decay": (float, 0.0, None, True),
    "eval_batch_size": (int, 1, None, True),
}
assert set(HYPERPARAMETER_RANGES) == set(BERTIN_DEFAULTS), "every default needs its range"


def check_hyperparameters(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``overrides`` (strings from ``--set``, or numbers) as typed values; a ValueError naming the
    key for an unknown key, a value of the wrong type, or one out of range."""
    out: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in HYPERPARAMETER_RANGES:
            raise ValueError(f"unknown hyperparameter {key!r}; valid: {', '.join(sorted(HYPERPARAMETER_RANGES))}, "
                             f"or a data file: {', '.join(FILE_KEYS)}")
        kind, low, high, low_ok = HYPERPARAMETER_RANGES[key]
        try:
            typed = kind(value) if not isinstance(value, bool) else None
            if typed is None or (kind is int and isinstance(value, float) and value != typed):
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"--set {key}={value}: expected {'an integer' if kind is int else 'a number'}") from None
        if kind is float and typed != typed:  # NaN
            raise ValueError(f"--set {key}={value}: expected a number")
        above = typed >= low if low_ok else typed > low
        if not above or (high is not None and typed > high):
            bound = f"{'>=' if low_ok else '>'} {low}" + (f" and <= {high}" if high is not None else "")
            raise ValueError(f"--set {key}={value}: must be {bound}")
        out[key] = typed
    return out


SPLITS = ("train", "validation", "test")
# ``--set <split>_file=PATH`` keys: a task's local data file, not a hyperparameter.
FILE_KEYS = tuple(f"{split}_file" for split in SPLITS)


def split_overrides(overrides: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """``--set`` values as (hyperparameters, {split: file}): ``train_file=...`` etc. pick data files."""
    hp: dict[str, Any] = {}
    files: dict[str, str] = {}
    for key, value in (overrides or {}).items():
        if key in FILE_KEYS:
            if not str(value).strip():
                raise ValueError(f"--set {key}=: empty path")
            files[key[: -len("_file")]] = str(value)
        else:
            hp[key] = value
    return hp, files


TASKS: dict[str, TaskSpec] = {}

# Task groups the leaderboard averages over. The average is left empty when a task is missing.
GROUPS: dict[str, tuple[str, ...]] = {}


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} is already registered (bump `version` to change a task, do not re-register it)")
    if spec.task_type not in (TOKEN, SEQUENCE):
        raise ValueError(f"task {spec.name!r}: task_type must be {TOKEN!r} or {SEQUENCE!r}")
    if len(set(spec.labels)) != len(spec.labels):
        raise ValueError(f"task {spec.name!r}: duplicate labels")
    TASKS[spec.name] = spec
    for group in spec.groups:
        GROUPS[group] = (*GROUPS.get(group, ()), spec.name)
    return spec


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None


def task_names(names: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Expand a task selection: names, group names, 'all'; comma-separated strings allowed."""
    if names is None:
        return list(GROUPS["bertin"])
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for item in names:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            expanded = list(TASKS) if part == "all" else list(GROUPS.get(part, [part]))
            for name in expanded:
                get_task(name)
                if name not in out:
                    out.append(name)
    return out


def as_dict(spec: TaskSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


register(TaskSpec(
    name="pos_conll2002_es", version="1", task_type=TOKEN, labels=CONLL2002_ES_POS_LABELS,
    metric="token", main_score="accuracy",
    description="CoNLL-2002 Spanish POS tags (token accuracy; seqeval F1 too, as BERTIN reported)",
    # No revision pinned: no commit of the Hub's `conll2002` could be found from here (searched
    # MTEB's and lm-eval-harness's task metadata offline); a pin needs a commit read from the Hub.
    hub_id="conll2002", hub_config="es", hub_revision=None, text_columns=("tokens",), label_column="pos_tags",
    local_loader="conll2002", local_files={"train": "conll2002/esp.train", "validation": "conll2002/esp.testa", "test": "conll2002/esp.testb"},
    local_options={"column": 1}, groups=("bertin",),
))
register(TaskSpec(
    name="ner_conll2002_es", version="1", task_type=TOKEN, labels=CONLL2002_NER_LABELS,
    metric="token", main_score="f1",
    description="CoNLL-2002 Spanish NER, IOB2 (seqeval entity F1; token accuracy too)",
    hub_id="conll2002", hub_config="es", hub_revision=None, text_columns=("tokens",), label_column="ner_tags",  # see POS
    local_loader="conll2002", local_files={"train": "conll2002/esp.train", "validation": "conll2002/esp.testa", "test": "conll2002/esp.testb"},
    local_options={"column": 2}, groups=("bertin",),
))
register(TaskSpec(
    name="pawsx_es", version="1", task_type=SEQUENCE, labels=("0", "1"),
    metric="accuracy", main_score="accuracy",
    description="PAWS-X Spanish paraphrase identification (accuracy); rows with the untranslated 'NS' placeholder are skipped and counted",
    # The revision MTEB's task metadata pins for this dataset (embeddings-benchmark/mteb,
    # mteb/tasks/PairClassification/multilingual/PawsXPairClassification.py, which loads it with
    # trust_remote_code: that commit may be the script version, which datasets >= 4 cannot run;
    # then a Hub run fails loudly rather than reading other data).
    hub_id="google-research-datasets/paws-x", hub_config="es", hub_revision="8a04d940a42cd40658986fdd8e3da561533a3646",
    text_columns=("sentence1", "sentence2"), label_column="label",
    local_loader="tsv", local_files={"validation": "pawsx_es/dev.tsv", "test": "pawsx_es/test.tsv"},
    local_options={"columns": ("sentence1", "sentence2"), "label": "label", "skip_placeholder": "NS"},
    groups=("bertin",),
))
register(TaskSpec(
    name="xnli_es", version="1", task_type=SEQUENCE, labels=("entailment", "neutral", "contradiction"),
    metric="accuracy", main_score="accuracy",
    description="XNLI Spanish natural language inference, 3 classes (accuracy)",
    # No revision pinned: MTEB pins its own copy (mteb/xnli), and no commit of facebook/xnli could
    # be found from here; a pin needs a commit read from the Hub.
    hub_id="facebook/xnli", hub_config="es", hub_revision=None, text_columns=("premise", "hypothesis"), label_column="label",
    local_loader="tsv", local_files={"validation": "xnli_es/dev.tsv", "test": "xnli_es/test.tsv"},
    local_options={"columns": ("premise", "hypothesis"), "label": "label"},
    defaults={"epochs": 2, "max_length": 256}, groups=("bertin",),
))
register(TaskSpec(
    name="mldoc_es", version="1", task_type=SEQUENCE, labels=MLDOC_LABELS,
    metric="accuracy", main_score="accuracy",
    description=(
        "MLDoc Spanish news document classification (accuracy). Its data cannot be redistributed: "
        "put the files produced by facebookresearch/MLDoc's script in <data-dir>/mldoc_es/ as "
        "spanish.train.1000, spanish.dev, spanish.test (another training size: "
        "--set train_file=mldoc_es/spanish.train.5000; any split: --set <split>_file=PATH); "
        "one document per line, 'LABEL<TAB>text', label in CCAT/ECAT/GCAT/MCAT"
    ),
    text_columns=("text",), label_column="label",
    local_loader="tsv", local_files={"train": "mldoc_es/spanish.train.1000", "validation": "mldoc_es/spanish.dev", "test": "mldoc_es/spanish.test"},
    local_options={"columns": ("text",), "label": "label", "header": ("label", "text")},
))
register(TaskSpec(
    name="ud_pos_es", version="1", task_type=TOKEN, labels=UPOS_LABELS,
    metric="token", main_score="accuracy",
    description="UPOS tagging on UD Spanish AnCora (token accuracy); local copies: <data-dir>/ud_es_ancora/es_ancora-ud-{train,dev,test}.conllu",
    # No revision pinned (none found from here, as for conll2002).
    hub_id="universal_dependencies", hub_config="es_ancora", hub_revision=None, text_columns=("tokens",), label_column="upos",
    local_loader="conllu", local_files={"train": "ud_es_ancora/es_ancora-ud-train.conllu", "validation": "ud_es_ancora/es_ancora-ud-dev.conllu", "test": "ud_es_ancora/es_ancora-ud-test.conllu"},
))
