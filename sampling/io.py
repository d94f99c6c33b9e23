"""Input specs, the datatrove reader and writer for sampling shards.

Input syntax (``--input``):

- a file: ``web.jsonl``, ``web.jsonl.gz``, ``part-0.parquet``
- a directory (every ``*.jsonl``, ``*.jsonl.gz``, ``*.json.gz``, ``*.parquet`` below it; for the
  output of ``bench sample score``/``run`` its ``data/`` shards) or a glob (``shards/*.jsonl.gz``)
- a Hub dataset streamed with ``datasets``: ``hf://DATASET[:CONFIG][@SPLIT]``, e.g.
  ``hf://allenai/c4:es@train`` (split defaults to ``train``)

Records are kept FLAT: the reader puts every field except the text into ``Document.metadata`` (no
``file_path`` or other additions, so nothing is invented), and the writer writes them back next to
the text, plus ``perplexity``. Keys starting with ``_`` are internal (skip reason, ``file:line``).

Sharding: with at least as many files as tasks, task ``r`` reads files ``r, r+T, ...`` (datatrove's
rule); with fewer files than tasks (one big ``.jsonl.gz``), every task reads every file and takes
the lines that a deterministic byte-balanced split gives it (``_ByteBalancer``): skipped lines are
not parsed, so 2 tasks really halve the work, and each task gets about the same number of bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob as _glob
import heapq
import logging
import os
import re
from pathlib import Path
from typing import Iterator

from sampling._lazy_hub import import_datatrove_io

import_datatrove_io()  # before the datatrove imports below: see sampling/_lazy_hub.py

from datatrove.data import Document, DocumentsPipeline  # noqa: E402
from datatrove.pipeline.base import PipelineStep  # noqa: E402
from datatrove.pipeline.readers import HuggingFaceDatasetReader  # noqa: E402
from datatrove.pipeline.readers.base import BaseReader  # noqa: E402

from bertin_bench.io import read_json  # noqa: E402

log = logging.getLogger(__name__)

SHARD_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".parquet")
HF_PREFIX = "hf://"
SCORER_MANIFEST = "scorer.json"  # written next to data/ by `bench sample score`/`run`
DATA_SUBDIR = "data"

# Internal metadata keys (never written to output shards).
SKIP = "_skip"  # reason a record is skipped (malformed_json, invalid_utf8, missing_text, ...)
WHERE = "_where"  # "file:line" of the record, for errors and rejects
DETAIL = "_detail"


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Where documents come from: local files, or a Hub dataset (``hf_dataset`` set)."""

    files: tuple[str, ...] = ()
    hf_dataset: str | None = None
    hf_config: str | None = None
    hf_split: str = "train"
    source_dir: str | None = None  # the directory holding scorer.json when input is scored shards

    def describe(self) -> str:
        if self.hf_dataset:
            return f"hf://{self.hf_dataset}" + (f":{self.hf_config}" if self.hf_config else "") + f"@{self.hf_split}"
        return self.files[0] if len(self.files) == 1 else f"{len(self.files)} files under {os.path.commonpath(self.files)}"


def stored_perplexity_ok(spec: InputSpec, identity: dict) -> bool:
    """Whether ``perplexity`` fields in the input may be reused: only when the input is the output
    of ``bench sample score``/``run`` and its scorer.json names the same LM, sp model, mode and
    normalization. The one rule for trusting stored scores, used by the pipeline and by the
    boundaries."""
    from sampling.scorer import identity_diffs

    if not spec.source_dir:
        return False
    manifest = Path(spec.source_dir) / SCORER_MANIFEST
    diffs = identity_diffs(read_json(manifest), identity)
    if diffs:
        log.warning("%s: scored with another LM/mode/normalization than the current scorer (%s); re-scoring",
                    manifest, "; ".join(diffs))
    return not diffs


_HF_RE = re.compile(r"^hf://(?P<ds>[^:@]+)(?::(?P<cfg>[^@]+))?(?:@(?P<split>.+))?$")


def parse_input(spec: str | os.PathLike | InputSpec) -> InputSpec:
    """Resolve ``--input`` (see module doc) into an InputSpec; a missing path is a clear error."""
    if isinstance(spec, InputSpec):
        return spec
    text = os.fspath(spec)
    if text.startswith(HF_PREFIX):
        m = _HF_RE.match(text)
        if not m:
            raise ValueError(f"Hub input must look like hf://DATASET[:CONFIG][@SPLIT], got {text!r}")
        return InputSpec(hf_dataset=m["ds"].strip("/"), hf_config=m["cfg"], hf_split=m["split"] or "train")
    path = Path(text).expanduser()
    source_dir = None
    if path.is_file():
        files = [path]
        if path.parent.name == DATA_SUBDIR and (path.parent.parent / SCORER_MANIFEST).is_file():
            source_dir = str(path.parent.parent)
    elif path.is_dir():
        root = path / DATA_SUBDIR if (path / SCORER_MANIFEST).is_file() and (path / DATA_SUBDIR).is_dir() else path
        if root is not path:
            source_dir = str(path)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SHARD_SUFFIXES) and not p.name.startswith("."))
        if not files:
            raise FileNotFoundError(f"no input shards ({', '.join(SHARD_SUFFIXES)}) found under {path}")
    elif any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in _glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"the glob {text!r} matches no file")
    else:
        raise FileNotFoundError(f"input {text} does not exist (a file, directory, glob or hf://DATASET[:CONFIG])")
    for f in files:
        if not f.name.endswith(SHARD_SUFFIXES):
            raise ValueError(f"{f}: unsupported input format (expected one of {', '.join(SHARD_SUFFIXES)})")
    return InputSpec(files=tuple(str(f.resolve()) for f in files), source_dir=source_dir)


class FlatReader(BaseReader):
    """Reads JSONL(.gz/.zst) and parquet files into Documents with flat metadata; never drops silently.

    A bad record (malformed JSON, non-UTF-8 bytes, not an object, missing or non-string text) still
    becomes a Document, marked with ``metadata["_skip"] = reason`` and its ``file:line``; the
    validation filter downstream counts it, writes it to the rejects, or raises under ``--strict``.
    """

    name = "📄 flat reader"
    type = "📖 - READER"

    def __init__(self, spec: InputSpec, text_key: str = "text", id_key: str | None = None, limit: int = -1,
                 progress: bool = False):
        super().__init__(limit=limit, text_key=text_key, id_key=id_key or "id")
        self.spec = spec
        self.use_id = id_key is not None
        self.progress = progress

    def _shard(self, rank: int, world_size: int) -> tuple[list[str], _ByteBalancer | None]:
        """The files this task reads, and the splitter of their records (None: every record)."""
        files = list(self.spec.files)
        if len(files) >= world_size:
            return files[rank::world_size], None
        return files, _ByteBalancer(world_size, rank)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        from tqdm import tqdm

        files, split = self._shard(rank, world_size)
        n = 0
        # one bar per task, shown on terminals only (disable=None)
        with tqdm(desc=f"task {rank}/{world_size}", unit=" docs", mininterval=1, leave=False,
                  disable=None if self.progress else True) as bar:
            for path in files:
                self.stat_update("input_files")
                for lineno, record in self._records(path, split):
                    if self.limit != -1 and n >= self.limit:
                        return
                    doc = self._to_document(record, path, lineno)
                    n += 1
                    bar.update()
                    yield doc

    # -- per format -------------------------------------------------------------------------------

    def _records(self, path: str, split: _ByteBalancer | None) -> Iterator[tuple[int, object]]:
        if path.endswith(".parquet"):
            yield from self._parquet_records(path, split)
        else:
            yield from self._jsonl_records(path, split)

    def _jsonl_records(self, path, split):
        import orjson

        with _open_binary(path) as f:
            for lineno, raw in _lines(f, path):
                if raw is None:  # the file ends mid-stream: count the cut record, keep what came before
                    if split is None or split.mine(0):  # one task counts it (the next record's owner)
                        log.warning("%s: truncated_gzip: the file ends at line %d before its gzip end marker; "
                                    "the records after line %d are lost", path, lineno, lineno - 1)
                        yield lineno, _Bad("truncated_gzip", f"the file ends before its end-of-stream marker; the "
                                                             f"records from line {lineno} on are lost", "")
                    return
                if split is not None and not split.mine(len(raw)):
                    continue  # another task's line: not even parsed
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield lineno, _Bad("invalid_utf8", f"non-UTF-8 bytes at byte {err.start}", raw.decode("utf-8", "replace"))
                    continue
                if not line.strip():
                    yield lineno, _Bad("blank_line", "blank line", "")
                    continue
                try:
                    yield lineno, orjson.loads(line)
                except orjson.JSONDecodeError as err:
                    yield lineno, _Bad("malformed_json", f"invalid JSON: {err}", line)

    def _parquet_records(self, path, split):
        import pyarrow.parquet as pq

        lineno = 0
        try:  # pyarrow's errors (ArrowInvalid is a ValueError) do not name the file
            pf = pq.ParquetFile(path)
            batches = pf.iter_batches(batch_size=1024)
        except (OSError, ValueError) as err:
            raise UnreadableInput(f"{path}: cannot read this parquet file: {err}") from None
        for batch in _parquet_batches(batches, path):
            for row in batch.to_pylist():
                lineno += 1
                text = row.get(self.text_key)
                if split is None or split.mine(len(text) + 1 if isinstance(text, str) else 1):
                    yield lineno, row

    def _to_document(self, record, path: str, lineno: int) -> Document:
        where = f"{path}:{lineno}"
        if isinstance(record, _Bad):
            return Document(text=record.raw, id=where, metadata={SKIP: record.reason, WHERE: where, DETAIL: record.detail})
        if not isinstance(record, dict):
            return Document(text=str(record), id=where, metadata={SKIP: "not_an_object", WHERE: where,
                                                                  DETAIL: f"expected a JSON object, got {type(record).__name__}"})
        text = record.pop(self.text_key, None)
        meta = record
        if text is None or not isinstance(text, str):
            meta = {**record, SKIP: "missing_text" if text is None else "non_string_text", WHERE: where,
                    DETAIL: f"field {self.text_key!r} is " + ("missing" if text is None else f"a {type(text).__name__}")}
            return Document(text="" if text is None else str(text), id=where, metadata=meta)
        doc_id = where
        if self.use_id:
            if self.id_key not in record:
                meta[SKIP], meta[DETAIL] = "missing_id", f"field {self.id_key!r} is missing"
            else:
                doc_id = str(record[self.id_key])
        meta[WHERE] = where
        return Document(text=text, id=doc_id, metadata=meta)


class _ByteBalancer:
    """Splits one stream of records among tasks so that each gets about the same number of bytes.

    Each record goes to the task with the fewest bytes so far (ties: the lowest rank). Every task
    reads the whole stream and computes the same assignment from the same sizes, so the split needs
    no coordination and is the same on every run and resume. Scoring time grows with a document's
    length, so equal bytes finish together; the round-robin split it replaces gave equal counts, and
    on 20k web documents the slower of 2 tasks ran ~2% longer, an idle core at the end of every run.
    """

    def __init__(self, world_size: int, rank: int):
        self.rank = rank
        self._loads = [(0, r) for r in range(world_size)]  # (bytes so far, rank): a valid heap as is

    def mine(self, size: int) -> bool:
        load, owner = self._loads[0]
        heapq.heapreplace(self._loads, (load + size, owner))
        return owner == self.rank


@dataclasses.dataclass
class _Bad:
    reason: str
    detail: str
    raw: str


class UnreadableInput(OSError):
    """An input file that cannot be decoded (corrupt compressed data, a damaged parquet file); the
    message names the file and the line reached. A truncated gzip is not this: see ``_lines``."""


def _lines(f, path: str) -> Iterator[tuple[int, bytes | None]]:
    """(line number, raw line) of a binary file; ``(n, None)`` last when the compressed stream
    stops before its end marker (a truncated download or copy), ``n`` the first line not read in
    full. Other decode errors raise :class:`UnreadableInput` naming ``path:line``: the stream
    cannot be read past them, and guessing where the next record starts could invent one."""
    import zlib

    lineno = 0
    while True:
        try:
            raw = next(f, None)
        except EOFError:
            yield lineno + 1, None
            return
        except (OSError, zlib.error) as err:  # BadGzipFile (not gzip, CRC), corrupt deflate data
            raise UnreadableInput(f"{path}:{lineno + 1}: cannot decode the file: {err}") from None
        if raw is None:
            return
        lineno += 1
        yield lineno, raw


def _parquet_batches(batches, path: str):
    try:
        yield from batches
    except (OSError, ValueError) as err:
        raise UnreadableInput(f"{path}: cannot read this parquet file: {err}") from None


def _open_binary(path: str):
    if path.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        import io

        import zstandard

        # zstandard's reader has no readline: buffered, it iterates by line like the others. A
        # truncated .zst ends early without an error (zstandard does not report it).
        return io.BufferedReader(zstandard.open(path, "rb"))
    return open(path, "rb")


class FlatHubReader(HuggingFaceDatasetReader):
    """datatrove's Hub reader adds a "dataset" field and silently drops empty texts; this one turns
    every record into a Document (via the adapter) and lets empty/non-string texts be counted."""

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file):
        return Document(**self.adapter(data, source_file, id_in_file))


def hf_reader(spec: InputSpec, text_key: str = "text", id_key: str | None = None, limit: int = -1):
    """datatrove's Hub reader (streaming), producing the same flat documents as FlatReader."""
    options = {"split": spec.hf_split}
    if spec.hf_config:
        options["name"] = spec.hf_config

    def adapter(self, data: dict, path: str, id_in_file):
        text = data.pop(text_key, None)
        where = f"{spec.describe()}:{id_in_file}"
        meta = {**data, WHERE: where}
        if not isinstance(text, str):
            meta[SKIP] = "missing_text" if text is None else "non_string_text"
            text = "" if text is None else str(text)
        doc_id = str(data[id_key]) if id_key and id_key in data else where
        return {"text": text, "id": doc_id, "metadata": meta}

    return FlatHubReader(spec.hf_dataset, dataset_options=options, streaming=True, limit=limit, adapter=adapter,
                         text_key=text_key)


def make_reader(spec: InputSpec, text_key: str = "text", id_key: str | None = None, limit: int | None = None,
                progress: bool = False):
    limit = -1 if limit is None else int(limit)
    if spec.hf_dataset:
        return hf_reader(spec, text_key, id_key, limit)
    return FlatReader(spec, text_key=text_key, id_key=id_key, limit=limit, progress=progress)


def no_text_field_message(spec: InputSpec, text_key: str, missing: int) -> str:
    """The error for an input none of whose records has ``text_key`` (almost surely a wrong
    ``--text-key``): the fields the first such record does have, so the user sees which to pass."""
    first = next((d for d in make_reader(spec, text_key=text_key).run() if d.metadata.get(SKIP) == "missing_text"), None)
    fields = sorted(k for k in first.metadata if not k.startswith("_")) if first is not None else []
    return (f"{spec.describe()}: no valid document: no record has the text field {text_key!r} ({missing:,} records "
            f"without it); the records have the fields {', '.join(fields) or '(none)'}: pass --text-key with the "
            "one holding the text")


def flat_record(doc: Document, text_key: str = "text") -> dict:
    """The output record: the text under its original key, then every input field, then perplexity."""
    rec = {text_key: doc.text}
    for key, value in doc.metadata.items():
        if not key.startswith("_"):
            rec[key] = value
    return rec


class ShardWriter(PipelineStep):
    """``NNNNN.jsonl.gz`` per task (NNNNN = rank), flat records, written atomically.

    The shard is written as ``.NNNNN.jsonl.gz.partial`` and renamed when the task's stream ends, so a
    killed task never leaves a shard that looks complete; its rerun truncates the partial file. The
    shard is created even when no document is kept, so a finished run has exactly one per task.

    Compression is ours rather than fsspec's: gzip level 3 (3x faster than gzip's default 9 for
    files ~11% bigger; compression was a third of the per-document cost) and mtime 0 in the header,
    so the same documents always give byte-identical shards.

    A plain datatrove step rather than a ``JsonlWriter``: importing anything under
    ``datatrove.pipeline.writers`` runs that package's ``__init__``, which imports the Hub writer and
    with it huggingface_hub's whole API (0.16 s of every command's start-up), and none of
    ``DiskWriter``'s machinery was used here anyway. It is also the rejects writer of
    ``sampling.steps.DropFilter``, which only needs ``with writer:`` and ``write(document, rank)``.
    """

    name = "🐿 flat jsonl.gz shards"
    type = "💽 - WRITER"
    GZIP_LEVEL = 3

    def __init__(self, output_folder: str, text_key: str = "text", rejects: bool = False):
        from datatrove.io import get_datafolder

        super().__init__()
        self.output_folder = get_datafolder(output_folder)
        self.text_key = text_key
        self.rejects = rejects
        self._files: dict[str, tuple] = {}
        self._written = 0

    def record(self, document: Document) -> dict:
        if self.rejects:  # why and where, then the record as it was read
            meta = document.metadata
            return {"skip_reason": meta.get(SKIP), "where": meta.get(WHERE), "detail": meta.get(DETAIL),
                    "record": flat_record(document, self.text_key)}
        return flat_record(document, self.text_key)

    def write(self, document: Document, rank: int = 0, **kwargs):
        import orjson

        out = self._open(self._partial_name(rank))
        out.write(orjson.dumps(self.record(document), option=orjson.OPT_APPEND_NEWLINE))
        self._written += 1

    @staticmethod
    def shard_name(rank: int) -> str:
        return f"{rank:05d}.jsonl.gz"

    def _partial_name(self, rank) -> str:
        return f".{self.shard_name(int(rank))}.partial"

    def _open(self, filename: str):
        if filename not in self._files:
            import gzip

            raw = self.output_folder.open(filename, "wb")
            self._files[filename] = (raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                        compresslevel=self.GZIP_LEVEL, mtime=0))
        return self._files[filename][1]

    def __enter__(self):
        return self

    def close(self):
        for raw, gz in self._files.values():
            gz.close()
            raw.close()

    def __exit__(self, exc_type, exc_val, exc_tb):
        # Rename only after a clean end of the stream (also when used as a filter's exclusion
        # writer, which calls write() inside `with writer:`); on an exception or a killed
        # generator the .partial file stays behind, untrusted, and the task's rerun truncates it.
        opened = list(self._files)
        self.close()
        self._files.clear()
        if self._written:
            self.stat_update("total", value=self._written)
            self._written = 0
        if exc_type is None:
            for partial in opened:
                self.output_folder.mv(partial, partial[1:].removesuffix(".partial"))
            return
        # A task that failed (bad input under --strict, an unreadable file) leaves no partial shard
        # behind; a killed one cannot clean up, and its rerun truncates the file.
        for partial in opened:
            with contextlib.suppress(FileNotFoundError):
                self.output_folder.rm(partial)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self:
            self._open(self._partial_name(rank))  # exists even if empty
            for document in data:
                self.write(document, rank)
                yield document


# A 10 MB "document" is a dump, not prose, and scoring it costs seconds: documents longer than this
# are skipped with reason ``too_long`` (counted, never silently truncated -- a truncated text would
# get a perplexity that is not the document's). Override with ``--max-chars`` (0: no limit).
DEFAULT_MAX_CHARS = 1_000_000


def text_skip_reason(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> str | None:
    """``empty`` / ``too_long`` / None: the checks every scored text passes first."""
    if not text.strip():
        return "empty"
    if max_chars and len(text) > max_chars:
        return "too_long"
    return None
