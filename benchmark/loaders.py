"""Readers for the task data formats, and ``load_task_data``: a task's splits as ``datasets.Dataset``
objects with ``ClassLabel`` features, from local files or from the Hub.

Local formats (one reader each, nothing else parses them):
- CoNLL-2002: ``token POS NER`` per line, blank line between sentences, optional ``-DOCSTART-`` lines.
- CoNLL-U: 10 tab-separated columns; multiword token ranges (``1-2``) and empty nodes (``1.1``) skipped.
- TSV: header row (or declared column names), CSV quoting (the PAWS-X copy quotes sentences with
  embedded quotes), one example per row.

Bad input is an error naming the file and line. Rows with a declared placeholder (PAWS-X's ``NS``
for an untranslated sentence) are skipped and counted; the count is recorded in every result.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertin_bench import paths
from bertin_bench.provenance import hash_file

from benchmark.tasks import DEV_TRAIN, OFFICIAL, SEQUENCE, TaskSpec

log = logging.getLogger(__name__)

# Fraction of validation held out (by a seed-independent hash) for epoch selection under dev-train.
HELDOUT_FRACTION = 0.1


class DataError(ValueError):
    """Bad task data: the message names the file and line."""


def _check_label(label: str, labels: tuple[str, ...], path: Path, lineno: int) -> int:
    try:
        return labels.index(label)
    except ValueError:
        raise DataError(
            f"{path}:{lineno}: label {label!r} is not in the task's label list ({', '.join(labels)})"
        ) from None


def _read_sentences(path: Path, word_and_tag, is_boundary=lambda line: False) -> list[dict]:
    """Blank-line-separated sentences of a column file: ``{"tokens", "labels", "line"}`` where
    ``line`` is the sentence's first line. ``word_and_tag(line, lineno)`` returns ``(word, tag)``
    or None to skip the line; ``is_boundary(line)`` marks extra sentence separators."""
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[int] = []
    start = 1
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip() or is_boundary(line):
                if tokens:
                    sentences.append({"tokens": tokens, "labels": tags, "line": start})
                tokens, tags = [], []
                continue
            item = word_and_tag(line, lineno)
            if item is None:
                continue
            if not tokens:
                start = lineno
            tokens.append(item[0])
            tags.append(item[1])
    if tokens:
        sentences.append({"tokens": tokens, "labels": tags, "line": start})
    return sentences


def read_conll2002(path: str | Path, column: int, labels: tuple[str, ...]) -> list[dict]:
    """Sentences of a CoNLL-2002 file: ``{"tokens": [...], "labels": [ids], "line": first line}``.

    ``column`` picks the tag column (1 = POS, 2 = NER).
    """
    path = Path(path)

    def word_and_tag(line: str, lineno: int):
        parts = line.split(" ")
        if len(parts) <= column:
            raise DataError(f"{path}:{lineno}: expected 'token POS NER' columns, got {line!r}")
        return parts[0], _check_label(parts[column], labels, path, lineno)

    return _read_sentences(path, word_and_tag, is_boundary=lambda line: line.startswith("-DOCSTART-"))


def read_conllu(path: str | Path, labels: tuple[str, ...], column: int = 3) -> list[dict]:
    """Sentences of a CoNLL-U file with the UPOS column (3) as labels.

    Multiword token ranges (``1-2``) are surface forms whose syntactic words follow on their own
    lines, and empty nodes (``1.1``) are not in the surface text: both are skipped so that tokens
    are the syntactic words that carry UPOS tags.
    """
    path = Path(path)

    def word_and_tag(line: str, lineno: int):
        if line.startswith("#"):
            return None
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataError(f"{path}:{lineno}: expected 10 tab-separated CoNLL-U columns, got {len(cols)}")
        if "-" in cols[0] or "." in cols[0]:
            return None
        if not cols[0].isdigit():
            raise DataError(f"{path}:{lineno}: bad token id {cols[0]!r}")
        return cols[1], _check_label(cols[column], labels, path, lineno)

    return _read_sentences(path, word_and_tag)


@dataclass
class TsvStats:
    rows: int = 0
    skipped_placeholder: int = 0


def read_tsv(
    path: str | Path, columns: tuple[str, ...], label: str, labels: tuple[str, ...],
    header: tuple[str, ...] | None = None, skip_placeholder: str | None = None,
) -> tuple[list[dict], TsvStats]:
    """Rows of a TSV file as ``{column: text, ..., "labels": id, "line": n}``.

    With ``header`` the file has no header row and these are its column names. A row where a text
    column equals ``skip_placeholder`` is skipped and counted.
    """
    path = Path(path)
    stats = TsvStats()
    out: list[dict] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        names = list(header) if header else next(reader, None)
        if names is None:
            raise DataError(f"{path}:1: empty file")
        missing = [c for c in (*columns, label) if c not in names]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}; header has {', '.join(names)}")
        index = {name: i for i, name in enumerate(names)}
        for row in reader:
            lineno = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(names):
                raise DataError(f"{path}:{lineno}: expected {len(names)} tab-separated fields, got {len(row)}")
            stats.rows += 1
            texts = {c: row[index[c]] for c in columns}
            if skip_placeholder is not None and any(t.strip() == skip_placeholder for t in texts.values()):
                stats.skipped_placeholder += 1
                continue
            out.append({**texts, "labels": _check_label(row[index[label]].strip(), labels, path, lineno), "line": lineno})
    return out, stats


# --- datasets.Dataset construction -------------------------------------------------------------


def features_for(spec: TaskSpec):
    from datasets import ClassLabel, Features, Sequence, Value

    if spec.task_type == SEQUENCE:
        cols = {c: Value("string") for c in spec.text_columns}
        return Features({**cols, "labels": ClassLabel(names=list(spec.labels))})
    return Features({"tokens": Sequence(Value("string")), "labels": Sequence(ClassLabel(names=list(spec.labels)))})


def to_dataset(records: list[dict], spec: TaskSpec):
    from datasets import Dataset

    features = features_for(spec)
    columns = {name: [r[name] for r in records] for name in features}
    return Dataset.from_dict(columns, features=features)


@dataclass
class TaskData:
    """A task's splits ready for fine-tuning, and what was done to get them (recorded in results)."""

    spec: TaskSpec
    train: Any
    validation: Any
    test: Any
    protocol: str
    source: str  # "local" | "hub"
    info: dict = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def _local_conll2002(spec: TaskSpec, path: Path) -> tuple[list[dict], dict]:
    return read_conll2002(path, spec.local_options.get("column", 2), spec.labels), {}


def _local_conllu(spec: TaskSpec, path: Path) -> tuple[list[dict], dict]:
    return read_conllu(path, spec.labels), {}


def _local_tsv(spec: TaskSpec, path: Path) -> tuple[list[dict], dict]:
    opts = spec.local_options
    recs, stats = read_tsv(
        path, tuple(opts["columns"]), opts["label"], spec.labels,
        header=tuple(opts["header"]) if opts.get("header") else None,
        skip_placeholder=opts.get("skip_placeholder"),
    )
    return recs, {"rows": stats.rows, "skipped_placeholder": stats.skipped_placeholder}


# ``TaskSpec.local_loader`` names one of these: (spec, path) -> (records, per-file stats recorded in results).
LOCAL_LOADERS = {"conll2002": _local_conll2002, "conllu": _local_conllu, "tsv": _local_tsv}


def _read_local(spec: TaskSpec, path: Path) -> tuple[list[dict], dict]:
    try:
        reader = LOCAL_LOADERS[spec.local_loader]
    except KeyError:
        raise ValueError(f"task {spec.name}: unknown local loader {spec.local_loader!r}; valid: {', '.join(LOCAL_LOADERS)}") from None
    return reader(spec, path)


def local_files(spec: TaskSpec, data_dir: Path | None = None) -> dict[str, Path] | None:
    """The task's local files when all of them exist in the data directory, else None."""
    root = data_dir or paths.data_dir()
    if root is None or not spec.local_files:
        return None
    files = {split: Path(root) / rel for split, rel in spec.local_files.items()}
    return files if all(p.is_file() for p in files.values()) else None


def heldout_mask(keys: list[str], fraction: float = HELDOUT_FRACTION) -> list[bool]:
    """Which examples go to the held-out slice: a hash of a key text, independent of the seed so
    that every seed and every model selects epochs on the same examples."""
    bound = int(fraction * 10_000)
    return [int(hashlib.sha1(k.encode("utf-8")).hexdigest()[:8], 16) % 10_000 < bound for k in keys]


def load_task_data(
    spec: TaskSpec, source: str = "auto", data_dir: str | Path | None = None,
    limit_train: int | None = None, limit_eval: int | None = None,
) -> TaskData:
    """Load a task's train/validation/test splits.

    ``source``: ``local`` (files in the data directory), ``hub`` (``datasets.load_dataset``), or
    ``auto`` (local when all files exist, else the Hub). Without a train split the protocol is
    dev-train: train on validation minus a hashed 10% slice, select the epoch on that slice, score
    test. ``limit_train`` / ``limit_eval`` keep the first N examples (quick runs; recorded).
    """
    data_dir = Path(data_dir) if data_dir else paths.data_dir()
    files = local_files(spec, data_dir)
    if source == "auto":
        source = "local" if files else "hub"
    info: dict[str, Any] = {}
    if source == "local":
        if files is None:
            where = data_dir if data_dir else "(no data directory configured)"
            wanted = ", ".join(spec.local_files.values()) or "(no local loader)"
            raise FileNotFoundError(
                f"task {spec.name}: local files missing in {where}: expected {wanted}. {spec.description}"
            )
        splits: dict[str, list[dict]] = {}
        info["files"] = {}
        for split, path in files.items():
            records, stats = _read_local(spec, path)
            splits[split] = records
            info["files"][split] = {"path": str(path), "sha256": hash_file(path), "examples": len(records), **stats}
            if stats.get("skipped_placeholder"):
                log.warning("%s: skipped %d rows with the %r placeholder", path, stats["skipped_placeholder"], spec.local_options.get("skip_placeholder"))
        datasets_ = {split: to_dataset(recs, spec) for split, recs in splits.items()}
    elif source == "hub":
        datasets_ = _load_hub(spec)
        info["hub"] = {"id": spec.hub_id, "config": spec.hub_config, "revision": spec.hub_revision}
    else:
        raise ValueError(f"source must be local, hub or auto, not {source!r}")

    for split, ds in datasets_.items():
        if len(ds) == 0:
            raise DataError(f"task {spec.name}: the {split} split is empty ({info.get('files', {}).get(split, {}).get('path', spec.hub_id)})")

    if "train" in datasets_:
        protocol = OFFICIAL
        train, validation = datasets_["train"], datasets_["validation"]
    else:
        protocol = DEV_TRAIN
        dev = datasets_["validation"]
        key_col = spec.text_columns[0]
        keys = [x if isinstance(x, str) else " ".join(x) for x in dev[key_col]]
        mask = heldout_mask(keys)
        validation = dev.select([i for i, m in enumerate(mask) if m])
        train = dev.select([i for i, m in enumerate(mask) if not m])
        info["heldout"] = {"fraction": HELDOUT_FRACTION, "by": f"sha1({key_col})", "train": len(train), "validation": len(validation)}
    test = datasets_["test"]
    if limit_train:
        train = train.select(range(min(limit_train, len(train))))
    if limit_eval:
        validation = validation.select(range(min(limit_eval, len(validation))))
        test = test.select(range(min(limit_eval, len(test))))
    info["limit_train"] = limit_train
    info["limit_eval"] = limit_eval
    return TaskData(spec, train, validation, test, protocol, source, info)


def _load_hub(spec: TaskSpec) -> dict:
    """The task's splits from the Hub, mapped by label *names* onto the task's label list."""
    if spec.hub_id is None:
        raise FileNotFoundError(f"task {spec.name} has no Hub dataset; {spec.description}")
    from datasets import load_dataset

    try:
        raw = load_dataset(spec.hub_id, spec.hub_config, revision=spec.hub_revision)
    except Exception as err:  # noqa: BLE001 - datasets raises many types for offline/missing
        raise FileNotFoundError(
            f"task {spec.name}: could not load {spec.hub_id} ({spec.hub_config}) from the Hub: {err}. "
            f"Offline? Put the local files in the data directory instead ({', '.join(spec.local_files.values()) or 'no local loader'})."
        ) from err
    out = {}
    for split, hub_split in spec.hub_splits.items():
        ds = raw[hub_split]
        feat = ds.features[spec.label_column]
        names = feat.feature.names if spec.task_type != SEQUENCE else getattr(feat, "names", None)
        # Map by label name; a Hub label outside the task's list is an error only if it occurs.
        remap = {i: (spec.labels.index(n) if n in spec.labels else None) for i, n in enumerate(names)} if names else None

        def label_id(value, row: int, remap=remap, split=split):
            idx = remap.get(value) if remap else (spec.labels.index(str(value)) if str(value) in spec.labels else None)
            if idx is None:
                name = names[value] if names else value
                raise DataError(f"{spec.hub_id} ({spec.hub_config}) {split} row {row}: label {name!r} is not in the task's label list")
            return idx

        records = []
        for row, ex in enumerate(ds):
            lab = ex[spec.label_column]
            if spec.task_type == SEQUENCE:
                if lab is None or (isinstance(lab, int) and lab < 0):
                    continue  # unlabelled rows (-1) in some Hub test splits
                records.append({**{c: ex[c] for c in spec.text_columns}, "labels": label_id(lab, row)})
            else:
                records.append({"tokens": ex["tokens"], "labels": [label_id(t, row) for t in lab]})
        out[split] = to_dataset(records, spec)
    return out
