"""Skip a stage when its output was made from the same inputs: the one rule every stage uses.

A stage's *key* is a JSON-able dict of everything its output depends on (config values, input
hashes, upstream keys). Its output records ``key_hash`` (and the key itself, for a human reading
the file); a rerun compares hashes and skips on a match, redoes on a mismatch. The marker is the
last thing a stage writes, so an output without one is unfinished and is redone.

Two shapes, one rule:

- a stage that owns a directory marks it with a ``stage.json`` file (:func:`is_done`,
  :func:`mark_done`, :func:`summary`);
- a stage whose output is one JSON file (a result, an export's info, an LM's meta) stores
  :func:`stamp` in that file and tests it with :func:`matches`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bertin_bench.io import read_json, write_json_atomic
from bertin_bench.provenance import hash_jsonable, now_iso

STAGE_FILE = "stage.json"


def key_hash(key: Any) -> str:
    return hash_jsonable(key)


def stamp(key: Any) -> dict:
    """The fields an output records about the key that made it."""
    return {"key_hash": key_hash(key), "key": key}


def matches(record: dict | None, key: Any) -> bool:
    """True when ``record`` (a parsed output file, or None when there is none) was made from ``key``."""
    return isinstance(record, dict) and record.get("key_hash") == key_hash(key)


def _marker(out: str | Path, name: str) -> Path:
    return Path(out) / name


def read_marker(out: str | Path, name: str = STAGE_FILE) -> dict | None:
    """The marker of a directory stage, or None when it has none or an unreadable one (unfinished)."""
    path = _marker(out, name)
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def is_done(out: str | Path, key: Any, name: str = STAGE_FILE) -> bool:
    """True when directory ``out`` holds a finished stage made from exactly ``key``."""
    return matches(read_marker(out, name), key)


def mark_done(out: str | Path, key: Any, summary: dict | None = None, name: str = STAGE_FILE) -> Path:
    """Record that ``out`` holds the finished stage for ``key``; call it last."""
    return write_json_atomic(_marker(out, name), {**stamp(key), "summary": summary or {}, "finished": now_iso()})


def summary(out: str | Path, name: str = STAGE_FILE) -> dict:
    marker = read_marker(out, name)
    if marker is None:
        raise FileNotFoundError(f"{out} holds no finished stage ({name} missing or unreadable)")
    return marker.get("summary", {})
