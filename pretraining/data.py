"""Shards -> documents -> tokens -> blocks -> masked-LM batches, streamed.

- Files: a shard directory (its ``*.jsonl.gz``/``*.jsonl``/``*.parquet`` files sorted by name, what
  the sampling stage writes to ``OUT/data/``), a glob, a file, or a list of those.
- Held-out slice: the first ``eval_docs`` documents in file order are the evaluation set and are
  never trained on.
- Training stream (RoBERTa style): documents are tokenized in batches with ``<s> ... </s>`` around
  each, concatenated and cut into blocks of ``seq_len`` tokens, so documents shorter than a block
  are packed together and nothing is padded. Documents are read in *chunks* of about
  ``shuffle_buffer_blocks`` blocks; the blocks of a chunk are shuffled with a seed derived from the
  chunk's start, and the tail shorter than a block is dropped at the end of a chunk (< 1 block per
  chunk). A chunk is therefore a pure function of where it starts, which makes the data position
  small and exact: ``(epoch, file, line, block)``. Resuming re-reads one chunk, never the corpus.
- Epochs: when the files run out the stream starts again with the next epoch, whose file order is
  a new permutation (seeded) and whose chunks are shuffled differently.
- Masking (dynamic, per step): exactly round(15%) of the non-special tokens of each sequence are
  chosen (as the original BERT code does, so the number of predictions per row has a static bound
  for the masked-positions-only output layer); 80% become <mask>, 10% a random token, 10% stay.
  Special tokens and padding are never chosen. The masking RNG is seeded by (seed, step), so a
  resumed run masks exactly like an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import itertools
import logging
import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)

SHARD_SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".parquet")


# ----------------------------------------------------------------------------- files and documents

def resolve_files(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """The shard files named by ``spec``; a clear error when nothing matches."""
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not specs:
        raise ValueError("no training files given (data.train_files is empty)")
    files: list[Path] = []
    for item in specs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(SHARD_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"shard directory {p} has no {'/'.join('*' + s for s in SHARD_SUFFIXES)} files")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif any(c in str(item) for c in "*?["):
            found = sorted(Path(f) for f in glob.glob(str(p)) if Path(f).is_file())
            if not found:
                raise FileNotFoundError(f"no shard files match {item}")
            files.extend(found)
        else:
            raise FileNotFoundError(f"shard file or directory {p} not found (sample shards first with "
                                    "`bench sample run ... --out DIR` and pass data.train_files=[DIR/data])")
    return files


@dataclass(frozen=True)
class Document:
    file_index: int  # index into the resolved file list
    line: int  # 1-based line (JSONL) or row (parquet) number
    text: str


def _iter_rows(path: Path, text_field: str, after_line: int = 0) -> Iterator[tuple[int, str]]:
    """(line, text) of one shard, skipping lines <= after_line; errors name file:line."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if text_field not in pf.schema_arrow.names:
            raise ValueError(f"{path}: no {text_field!r} column (columns: {pf.schema_arrow.names})")
        row = 0
        for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
            for text in batch.column(0).to_pylist():
                row += 1
                if row > after_line:
                    yield row, text or ""
        return
    import orjson

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if lineno <= after_line or not raw.strip():
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError as err:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({err})") from None
                if not isinstance(obj, dict) or text_field not in obj:
                    raise ValueError(f"{path}:{lineno}: no {text_field!r} field in the JSON object")
                text = obj[text_field]
                if text is not None and not isinstance(text, str):
                    raise ValueError(f"{path}:{lineno}: {text_field!r} is {type(text).__name__}, not a string")
                yield lineno, text or ""
    except (EOFError, gzip.BadGzipFile, OSError) as err:
        raise ValueError(f"{path}: unreadable shard ({err})") from None


def iter_documents(files: Sequence[Path], text_field: str = "text",
                   order: Sequence[int] | None = None, start: tuple[int, int] = (0, 0),
                   skip: dict[int, int] | None = None) -> Iterator[Document]:
    """Documents with non-empty text, visiting ``files`` in ``order`` (indices) from
    ``start=(position in order, last line already read)``. ``skip[file_index] = n`` drops lines
    <= n of that file (the held-out slice)."""
    order = list(range(len(files))) if order is None else list(order)
    skip = skip or {}
    for pos in range(start[0], len(order)):
        fi = order[pos]
        after = max(start[1] if pos == start[0] else 0, skip.get(fi, 0))
        for line, text in _iter_rows(files[fi], text_field, after):
            if text.strip():
                yield Document(fi, line, text)


# ----------------------------------------------------------------------------- tokens and blocks

def tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Batched tokenization (Rust, no offsets) with ``<s> ... </s>`` around each document.

    The special tokens are added here rather than by the tokenizer's post-processor because
    tokenizer files differ: BERTIN's published ``tokenizer.json`` has none (plain ByteLevel), so
    relying on it would silently train without document boundaries."""
    backend = tokenizer.backend_tokenizer
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return [[bos, *e.ids, eos] for e in encode(list(texts), add_special_tokens=False)]


def cut_blocks(token_lists: Sequence[Sequence[int]], seq_len: int) -> np.ndarray:
    """Concatenate and cut into [n, seq_len] blocks; the tail shorter than a block is dropped."""
    flat = np.fromiter(itertools.chain.from_iterable(token_lists), dtype=np.int32)
    n = len(flat) // seq_len
    return flat[: n * seq_len].reshape(n, seq_len)


@dataclass(frozen=True)
class Position:
    """Where the training stream is: a chunk starts after ``line`` of the file at ``file_pos`` in
    the epoch's file order, and ``block`` of its shuffled blocks were already consumed."""

    epoch: int = 0
    file_pos: int = 0
    line: int = 0
    block: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Position":
        return cls(**{k: int(d[k]) for k in ("epoch", "file_pos", "line", "block")})


class BlockStream:
    """The held-out blocks and the endless, resumable, shuffled training blocks of a shard set."""

    def __init__(self, files: Sequence[Path], tokenizer, seq_len: int, *, eval_docs: int = 200,
                 shuffle_buffer_blocks: int = 2048, seed: int = 0, text_field: str = "text",
                 tokenize_batch_docs: int = 256, eval_files: Sequence[Path] = ()):
        self.files = list(files)
        self.tokenizer = tokenizer
        self.seq_len = seq_len
        self.eval_docs = eval_docs
        self.buffer_blocks = max(1, shuffle_buffer_blocks)
        self.seed = seed
        self.text_field = text_field
        self.batch_docs = max(1, tokenize_batch_docs)
        source = list(eval_files) or self.files
        self._heldout_docs = list(itertools.islice(iter_documents(source, text_field), eval_docs))
        if eval_docs and not self._heldout_docs:
            raise ValueError(f"no documents with text in {len(source)} shard file(s): {source[0]} ...")
        # Held out = everything up to the last held-out document's line, per file (nothing when the
        # held-out documents come from separate eval files).
        self.skip: dict[int, int] = {}
        if eval_files:
            return
        for d in self._heldout_docs:
            self.skip[d.file_index] = d.line
        for fi in range(max(self.skip, default=-1)):
            self.skip[fi] = 10**18  # files entirely inside the held-out slice

    # -- evaluation
    def eval_blocks(self, max_blocks: int) -> np.ndarray:
        if not self._heldout_docs:
            raise ValueError("data.eval_docs is 0: there is no held-out slice to evaluate on")
        blocks = cut_blocks(tokenize(self.tokenizer, [d.text for d in self._heldout_docs]), self.seq_len)
        if len(blocks) == 0:
            raise ValueError(
                f"the {len(self._heldout_docs)} held-out documents have fewer than seq_len={self.seq_len} "
                f"tokens together: raise data.eval_docs")
        return blocks[:max_blocks]

    # -- training
    def _file_order(self, epoch: int) -> list[int]:
        if epoch == 0:
            return list(range(len(self.files)))  # first epoch in the sampler's order
        return list(np.random.default_rng([self.seed, epoch, 7]).permutation(len(self.files)))

    def _read_chunk(self, pos: Position) -> tuple[np.ndarray, Position]:
        """The shuffled blocks of the chunk starting at ``pos`` and where the next chunk starts."""
        order = self._file_order(pos.epoch)
        docs = iter_documents(self.files, self.text_field, order, (pos.file_pos, pos.line), self.skip)
        target = self.buffer_blocks * self.seq_len
        token_lists: list[list[int]] = []
        n_tokens, last = 0, None
        while n_tokens < target:
            batch = list(itertools.islice(docs, self.batch_docs))
            if not batch:
                break
            for ids in tokenize(self.tokenizer, [d.text for d in batch]):
                token_lists.append(ids)
                n_tokens += len(ids)
            last = batch[-1]
        blocks = cut_blocks(token_lists, self.seq_len)
        if last is None:  # the epoch is over
            return blocks, Position(pos.epoch + 1, 0, 0, 0)
        nxt = Position(pos.epoch, order.index(last.file_index), last.line, 0)
        rng = np.random.default_rng([self.seed, pos.epoch, pos.file_pos, pos.line])
        return blocks[rng.permutation(len(blocks))], nxt

    def train_blocks(self, start: Position = Position()) -> Iterator[tuple[np.ndarray, Position]]:
        """Endless (block, position after it) pairs from ``start``."""
        pos = start
        empty_epoch = True
        while True:
            blocks, nxt = self._read_chunk(Position(pos.epoch, pos.file_pos, pos.line, 0))
            for b in range(pos.block, len(blocks)):
                empty_epoch = False
                yield blocks[b], Position(pos.epoch, pos.file_pos, pos.line, b + 1)
            if nxt.epoch != pos.epoch:
                if empty_epoch:
                    raise ValueError(
                        f"the training shards ({len(self.files)} file(s), after the {len(self._heldout_docs)} "
                        f"held-out documents) have fewer than one block of seq_len={self.seq_len} tokens")
                empty_epoch = True
                log.info("epoch %d of the training shards done", nxt.epoch)
            pos = nxt


# ----------------------------------------------------------------------------- masking

def max_predictions(seq_len: int, mlm_probability: float) -> int:
    """Static bound of masked positions per sequence (round() of at most seq_len eligible tokens)."""
    return max(1, int(math.floor(seq_len * mlm_probability + 0.5)))


@dataclass(frozen=True)
class MaskSpec:
    mask_id: int
    pad_id: int
    vocab_size: int
    special_ids: tuple[int, ...]
    mlm_probability: float = 0.15

    @classmethod
    def from_tokenizer(cls, tokenizer, mlm_probability: float = 0.15) -> "MaskSpec":
        return cls(mask_id=tokenizer.mask_token_id, pad_id=tokenizer.pad_token_id, vocab_size=len(tokenizer),
                   special_ids=tuple(sorted(set(tokenizer.all_special_ids))), mlm_probability=mlm_probability)


def mask_tokens(input_ids: np.ndarray, rng: np.random.Generator, spec: MaskSpec,
                rows: slice | None = None) -> dict[str, np.ndarray]:
    """Dynamic MLM masking of a [B, L] batch (see module doc). Returns the model inputs and both
    label layouts: ``labels`` [B, L] (-100 = not predicted) for a full-logits loss, and
    ``mlm_positions``/``mlm_ids``/``mlm_weights`` [B, K] for the masked-positions-only output.

    ``rows`` masks only those rows of the batch (one process's share on several hosts), exactly
    as masking the whole batch would: the random draws always have the whole batch's shape, and
    everything after them is row by row."""
    input_ids = np.asarray(input_ids, dtype=np.int32)
    B, L = input_ids.shape
    K = max_predictions(L, spec.mlm_probability)
    # The three draws, in this order, for the whole batch (what makes ``rows`` exact).
    scores = rng.random((B, L))
    action = rng.random((B, K))
    random_tokens = rng.integers(0, spec.vocab_size, size=(B, K), dtype=np.int32)
    if rows is not None:
        input_ids, scores, action, random_tokens = input_ids[rows], scores[rows], action[rows], random_tokens[rows]
        B = len(input_ids)
    eligible = ~np.isin(input_ids, np.asarray(spec.special_ids + (spec.pad_id,), dtype=np.int32))
    n_eligible = eligible.sum(axis=1)
    n_mask = np.minimum(np.floor(n_eligible * spec.mlm_probability + 0.5).astype(np.int64), K)
    n_mask = np.where((n_eligible > 0) & (n_mask == 0), 1, n_mask)  # every row predicts something
    # A random order of the eligible positions; the first n_mask[row] are chosen.
    scores[~eligible] = np.inf
    chosen = np.argsort(scores, axis=1, kind="stable")[:, :K]
    valid = np.arange(K)[None, :] < n_mask[:, None]
    positions = np.where(valid, np.sort(np.where(valid, chosen, L), axis=1), 0)
    # (sorting keeps the valid entries first, so ``valid`` still marks them)
    row_of = np.broadcast_to(np.arange(B)[:, None], (B, K))
    original = input_ids[row_of, positions]

    masked = input_ids.copy()
    replacement = np.where(action < 0.8, spec.mask_id, np.where(action < 0.9, random_tokens, original))
    masked[row_of[valid], positions[valid]] = replacement[valid]
    labels = np.full((B, L), -100, dtype=np.int32)
    labels[row_of[valid], positions[valid]] = original[valid]
    return {
        "input_ids": masked,
        "attention_mask": (input_ids != spec.pad_id).astype(np.int32),
        "labels": labels,
        "mlm_positions": positions.astype(np.int32),
        "mlm_ids": np.where(valid, original, 0).astype(np.int32),
        "mlm_weights": valid.astype(np.float32),
    }


# ----------------------------------------------------------------------------- batches

@dataclass(frozen=True)
class ProcessBatch:
    """One process's share of a training step's global batch."""

    step: int
    arrays: dict[str, np.ndarray]  # this process's rows of the masked global batch
    position: Position  # the data position after the whole global batch
    tokens: int  # non-padding tokens of the whole global batch (what ``tokens_seen`` counts)
    blocks: tuple[tuple[int, int, int, int], ...]  # ids (epoch, file_pos, line, index) of this process's rows


def process_batches(stream: BlockStream, batch_size: int, spec: MaskSpec, *, seed: int, rows: slice,
                    start_step: int = 0, start: Position = Position()) -> Iterator[ProcessBatch]:
    """This process's ``rows`` of every global batch from ``start_step``, endless.

    Every process walks the same deterministic block stream (reading and tokenizing it costs each
    host what it costs a single host) and masks and ships only its rows, so each block of an epoch
    is trained on by exactly one process, and the global batch -- hence the loss -- does not depend
    on the number of processes. A block's id is its chunk's start and its index in the chunk."""
    stream_blocks = stream.train_blocks(start)
    step = start_step
    mine = range(batch_size)[rows]
    while True:
        pairs = list(itertools.islice(stream_blocks, batch_size))  # (block, position after it)
        block_rows = np.stack([b for b, _ in pairs])
        arrays = mask_tokens(block_rows, np.random.default_rng([seed, step, 1]), spec, rows=rows)
        ids = tuple((p.epoch, p.file_pos, p.line, p.block - 1) for _, p in (pairs[i] for i in mine))
        yield ProcessBatch(step, arrays, pairs[-1][1], int((block_rows != spec.pad_id).sum()), ids)
        step += 1


def train_batches(stream: BlockStream, batch_size: int, spec: MaskSpec, *, seed: int,
                  start_step: int = 0, start: Position = Position()) -> Iterator[tuple[int, dict, Position]]:
    """(step, masked batch, data position after it) from ``start_step``, endless: the whole batch
    (one process holding every row)."""
    for b in process_batches(stream, batch_size, spec, seed=seed, rows=slice(0, batch_size),
                             start_step=start_step, start=start):
        yield b.step, b.arrays, b.position


def eval_batches(blocks: np.ndarray, batch_size: int, spec: MaskSpec, seed: int) -> list[dict]:
    """Fixed masks for the held-out blocks (same every evaluation, so the curve is comparable)."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    n = (len(blocks) // batch_size) * batch_size
    if n == 0:
        raise ValueError(f"{len(blocks)} held-out blocks make no full eval batch of {batch_size}: raise data.eval_docs")
    return [mask_tokens(blocks[i:i + batch_size], rng, spec) for i in range(0, n, batch_size)]


class Prefetcher:
    """Runs a generator in a background thread, ``depth`` items ahead, so that tokenization and
    masking overlap the device step. Exceptions are re-raised in the consumer."""

    _DONE = object()

    def __init__(self, it: Iterator, depth: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(it,), daemon=True)
        self._thread.start()

    def _run(self, it):
        try:
            for item in it:
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._q.put(self._DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            self._q.put(err)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is self._DONE:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
