"""Train a reference KenLM model the CCNet way: the two files ``PerplexityScorer`` loads.

The recipe (CCNet ``Makefile``/``get_wiki_cirrus``, and the edugp models BERTIN-era tools used):

    text --CCNet normalize--> norm.txt --sentencepiece unigram--> LANG.sp.model
    norm.txt --encode_as_pieces, space-joined--> lmplz -o 5 --> ARPA --build_binary trie--> LANG.arpa.bin

Normalization is the scorer's own (``sampling.normalize``; the ``cc_net`` preset unless another
is asked for), applied line by line, so the LM sees exactly the text the ``lines``/``ccnet`` scoring
modes feed it. It is written to ``normalization.json`` next to the model, which the scorer reads:
a model trained here is never scored with another normalization. ``lmplz`` and
``build_binary`` are C++ programs that the ``kenlm`` wheel does not ship: ``tools/build_kenlm.sh``
builds them into ``tools/kenlm-bin/``; :func:`find_kenlm_binary` finds them.

Outputs are built in a staging directory next to ``out_dir`` and moved into place only when all of
them exist; ``lm_meta.json`` (inputs hash, options, sizes, command lines, provenance) is written
last, so its presence marks a complete model. Rerunning with the same text and options is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Sequence

from bertin_bench import markers, provenance
from bertin_bench.io import atomic_dir, read_json, write_json_atomic

log = logging.getLogger(__name__)

KENLM_BIN_ENV = "KENLM_BIN"
REPO_BIN_DIR = Path(__file__).resolve().parent.parent / "tools" / "kenlm-bin"
META_NAME = "lm_meta.json"
META_VERSION = 1

# Defaults sized for a ~1 M-word reference text like wiki_es.txt (the shared kenlm_es model uses
# the same values). CCNet used a 65k vocabulary on full Wikipedia dumps; with 1 M words a 65k
# unigram vocabulary would hold mostly whole rare words and leave little for lmplz to generalise.
DEFAULT_VOCAB_SIZE = 16_000
DEFAULT_ORDER = 5
# Prune singleton n-grams of order >= 3 (lmplz repeats the last threshold for higher orders):
# halves the model with almost no perplexity cost, as in the shared model.
DEFAULT_PRUNE = (0, 0, 1)
DEFAULT_SP_SAMPLE_LINES = 2_000_000
# Lines per sentencepiece encode call: one C call per batch instead of one per line.
_ENCODE_BATCH = 4096


class KenLMBinaryNotFound(FileNotFoundError):
    """lmplz/build_binary are not installed; the message says how to build them."""


class LMTrainingError(RuntimeError, OSError):
    """A stage of training failed; the message names the stage and carries the tool's stderr tail.

    Also an ``OSError`` (a failing external program, like a failing file operation) so that
    ``bertin_bench.errors.user_errors`` reports it in one line, as the other expected failures."""


# -- finding the KenLM programs ------------------------------------------------------------------


def find_kenlm_binary(name: str) -> Path:
    """Path to KenLM's ``name`` (``lmplz`` or ``build_binary``).

    Looked up in ``$KENLM_BIN`` (a directory), then ``tools/kenlm-bin/`` of this repository (where
    ``tools/build_kenlm.sh`` installs them), then ``$PATH``.
    """
    tried = []
    env_dir = os.environ.get(KENLM_BIN_ENV)
    if env_dir:
        candidate = Path(env_dir).expanduser() / name
        if _executable(candidate):
            return candidate
        # An explicit setting that does not hold the program is a mistake worth reporting as such,
        # rather than silently running some other build found on PATH.
        raise KenLMBinaryNotFound(
            f"${KENLM_BIN_ENV}={env_dir} does not contain an executable {name!r}; point it at the "
            "directory holding lmplz and build_binary, or unset it"
        )
    candidate = REPO_BIN_DIR / name
    tried.append(str(candidate))
    if _executable(candidate):
        return candidate
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    tried.append("$PATH")
    raise KenLMBinaryNotFound(
        f"KenLM's {name!r} program was not found (tried {', '.join(tried)}). Build it with "
        f"`bash tools/build_kenlm.sh` (about a minute; installs into {REPO_BIN_DIR}), or set "
        f"${KENLM_BIN_ENV} to a directory holding lmplz and build_binary."
    )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


# -- options -----------------------------------------------------------------------------------


def parse_prune(prune: str | Sequence[int] | None, order: int) -> list[int]:
    """lmplz ``--prune`` thresholds as a list; ``None``/empty/"0" means no pruning.

    lmplz rules, checked here so the error names the option instead of surfacing as lmplz's stderr:
    unigrams cannot be pruned, thresholds never decrease, at most one per order.
    """
    if prune is None:
        return []
    values = [int(v) for v in prune.replace(",", " ").split()] if isinstance(prune, str) else list(prune)
    if not values or all(v == 0 for v in values):
        return []
    if values[0] != 0:
        raise ValueError(f"prune {values}: unigrams cannot be pruned, the first threshold must be 0")
    if any(b < a for a, b in zip(values, values[1:])):
        raise ValueError(f"prune {values}: thresholds must be non-decreasing")
    if any(v < 0 for v in values):
        raise ValueError(f"prune {values}: thresholds must be >= 0")
    # Thresholds past the order apply to n-grams that do not exist (the default "0 0 1" with
    # --order 2); lmplz rejects them, so drop them.
    values = values[:order]
    return [] if all(v == 0 for v in values) else values


# -- the recipe --------------------------------------------------------------------------------


def train_lm(
    text_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    lang: str = "es",
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    order: int = DEFAULT_ORDER,
    prune: str | Sequence[int] | None = DEFAULT_PRUNE,
    quantize: bool = True,
    sp_sample_lines: int = DEFAULT_SP_SAMPLE_LINES,
    normalize: bool = True,
    normalization="cc_net",
    max_lines: int | None = None,
    memory: str = "20%",
    threads: int | None = None,
    keep_arpa: bool = False,
    tmp_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Train ``out_dir/{lang}.sp.model`` and ``out_dir/{lang}.arpa.bin`` from a text file.

    ``text_path``: UTF-8 text, one sentence or paragraph per line (empty lines are skipped).
    ``max_lines``: use only the first N lines. ``normalization``: a preset name (``cc_net``,
    ``edugp``, ``raw``) or a ``sampling.normalize.Normalization``, recorded in
    ``out_dir/normalization.json``. ``normalize=False`` skips applying it (only for text that is
    already normalized that way: the scorer always applies it). ``memory``: lmplz/build_binary
    memory cap (``-S``: a percentage of RAM or a size like ``4G``). ``threads``: sentencepiece
    threads (default: all cores). ``tmp_dir``: where intermediates go (default: a staging directory
    next to ``out_dir``; the ARPA of a big corpus needs several times the final size).

    Returns the metadata written to ``out_dir/lm_meta.json``. When that file already records the
    same input hash and options and the model files are intact, nothing is retrained
    (``force=True`` retrains).
    """
    text_path = Path(text_path)
    out_dir = Path(out_dir)
    _check_text(text_path)
    if vocab_size < 10:
        raise ValueError(f"vocab_size {vocab_size} is too small")
    if not 1 <= order <= 6:
        raise ValueError(f"order {order}: the KenLM build supports orders 1..6")
    prune_values = parse_prune(prune, order)
    threads = threads or os.cpu_count() or 1
    lmplz, build_binary = find_kenlm_binary("lmplz"), find_kenlm_binary("build_binary")
    from sampling.normalize import CC_NET, NORMALIZATION_FILE, preset

    norm = preset(normalization)

    options = {
        "lang": lang, "vocab_size": vocab_size, "order": order, "prune": prune_values,
        "quantize": quantize, "sp_sample_lines": sp_sample_lines, "normalize": normalize,
        "max_lines": max_lines,
    }
    if norm != CC_NET:
        # Absent means cc_net, the only normalization before it was an option: the keys of models
        # trained then stay valid.
        options["normalization"] = norm.to_dict()
    sp_name, lm_name = f"{lang}.sp.model", f"{lang}.arpa.bin"
    log.info("hashing %s", text_path)
    text_hash = provenance.hash_file(text_path)
    key = {"meta_version": META_VERSION, "input_sha256": text_hash, "options": options}
    if not force:
        existing = _existing_meta(out_dir, key, [sp_name, lm_name])
        if existing is not None and (not keep_arpa or "arpa" in existing["files"]):
            log.info("%s already holds a model trained from this text with these options; "
                     "skipping (force=True retrains)", out_dir)
            if not (out_dir / NORMALIZATION_FILE).is_file():
                norm.save(out_dir)  # a model trained before the file existed
            return existing

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.train-", dir=out_dir.parent))
    if tmp_dir:
        Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lm-work-", dir=tmp_dir)) if tmp_dir else staging / "work"
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    commands: dict[str, str] = {}
    try:
        # 1. normalize ----------------------------------------------------------------------------
        t0 = time.perf_counter()
        norm_path = work / "norm.txt"
        apply = norm.normalizer().normalize if normalize and not norm.is_identity else None
        counts = _normalize_file(text_path, norm_path, normalize=apply, max_lines=max_lines, progress=progress)
        timings["normalize_s"] = time.perf_counter() - t0
        log.info("normalized %d lines (%d empty skipped) in %.1fs", counts["lines_used"],
                 counts["lines_empty"], timings["normalize_s"])

        # 2. sentencepiece ------------------------------------------------------------------------
        t0 = time.perf_counter()
        sp_path = staging / sp_name
        sp_args = _train_sentencepiece(norm_path, sp_path, vocab_size=vocab_size,
                                       sample_lines=sp_sample_lines, threads=threads)
        commands["sentencepiece"] = "SentencePieceTrainer.train(" + ", ".join(
            f"{k}={v!r}" for k, v in sp_args.items()) + ")"
        timings["sentencepiece_s"] = time.perf_counter() - t0
        log.info("trained sentencepiece unigram (%d pieces) in %.1fs", vocab_size, timings["sentencepiece_s"])

        # 3. encode + lmplz (pieces are streamed to lmplz's stdin: no pieces file on disk) -------
        t0 = time.perf_counter()
        arpa_path = work / f"{lang}.arpa"
        lmplz_cmd = [str(lmplz), "-o", str(order), "-S", memory, "-T", str(work),
                     "--discount_fallback", "--skip_symbols"]
        if prune_values:
            lmplz_cmd += ["--prune", *map(str, prune_values)]
        commands["lmplz"] = _display(lmplz_cmd, work) + f" < pieces > {arpa_path.name}"
        tokens = _run_lmplz(lmplz_cmd, norm_path, sp_path, arpa_path, work / "lmplz.log",
                            total_lines=counts["lines_used"], threads=threads, progress=progress)
        timings["lmplz_s"] = time.perf_counter() - t0
        ngrams = _arpa_counts(arpa_path)
        log.info("lmplz: %d tokens, n-grams %s, ARPA %.1f MB in %.1fs", tokens, ngrams,
                 arpa_path.stat().st_size / 1e6, timings["lmplz_s"])

        # 4. build_binary ---------------------------------------------------------------------------
        t0 = time.perf_counter()
        lm_path = staging / lm_name
        bb_cmd = [str(build_binary), "-S", memory, "-T", str(work / "trie.tmp")]
        if quantize:
            bb_cmd += ["-q", "8", "-b", "8"]
        bb_cmd += ["trie", str(arpa_path), str(lm_path)]
        commands["build_binary"] = _display([*bb_cmd[:-2], arpa_path.name, lm_path.name], work)
        _run_checked(bb_cmd, "build_binary", work / "build_binary.log")
        timings["build_binary_s"] = time.perf_counter() - t0
        log.info("build_binary trie%s: %.1f MB in %.1fs", " (quantized 8 bits)" if quantize else "",
                 lm_path.stat().st_size / 1e6, timings["build_binary_s"])

        norm.save(staging)
        meta = {
            "meta_version": META_VERSION,
            **markers.stamp(key),
            "files": {
                "sp_model": {"name": sp_name, "bytes": sp_path.stat().st_size,
                             "sha256": provenance.hash_file(sp_path)},
                "kenlm": {"name": lm_name, "bytes": lm_path.stat().st_size,
                          "sha256": provenance.hash_file(lm_path)},
            },
            "input": {"path": str(text_path.resolve()), "sha256": text_hash,
                      "bytes": text_path.stat().st_size, **counts, "tokens": tokens},
            "options": options,
            "normalization": norm.to_dict(),
            "ngrams": ngrams,
            "arpa_bytes": arpa_path.stat().st_size,
            "commands": commands,
            "kenlm_binaries": {"lmplz": str(lmplz), "build_binary": str(build_binary)},
            "timings": {k: round(v, 2) for k, v in timings.items()},
            "provenance": provenance.environment(),
        }
        if keep_arpa:
            os.replace(arpa_path, staging / arpa_path.name)
            meta["files"]["arpa"] = {"name": arpa_path.name, "bytes": meta["arpa_bytes"]}
        _publish(staging, out_dir, meta,
                 [sp_name, lm_name, NORMALIZATION_FILE] + ([arpa_path.name] if keep_arpa else []))
        log.info("wrote %s and %s to %s", sp_name, lm_name, out_dir)
        return meta
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


# -- stages --------------------------------------------------------------------------------------


def _check_text(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"training text {path} does not exist")
    if not path.is_file():
        raise ValueError(f"training text {path} is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"training text {path} is empty")


def _normalize_file(src: Path, dst: Path, *, normalize, max_lines: int | None, progress: bool) -> dict:
    """Write the non-empty lines of ``src``, passed through ``normalize`` (None: as they are), to
    ``dst``; count what was used."""
    from tqdm import tqdm

    used = empty = 0
    with open(src, "rb") as fin, open(dst, "w", encoding="utf-8") as fout, tqdm(
        total=src.stat().st_size, unit="B", unit_scale=True, desc="normalize", disable=not progress,
    ) as bar:
        for lineno, raw in enumerate(fin, 1):
            if max_lines is not None and lineno > max_lines:
                break
            bar.update(len(raw))
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{src}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
            # Normalization strips the line first, so its line break goes; un-normalized text only
            # needs its own line break and padding gone.
            line = normalize(line) if normalize else line.strip()
            if not line:
                empty += 1
                continue
            fout.write(line)
            fout.write("\n")
            used += 1
    if used == 0:
        raise ValueError(f"training text {src} has no non-empty line"
                         + (f" in its first {max_lines} lines" if max_lines else ""))
    return {"lines_read": used + empty, "lines_used": used, "lines_empty": empty}


def _train_sentencepiece(norm_path: Path, model_path: Path, *, vocab_size: int, sample_lines: int,
                         threads: int) -> dict:
    import sentencepiece as spm

    # The shared kenlm_es model's trainer spec, i.e. CCNet's: unigram, 0.9999 character coverage,
    # a shuffled sample of at most `sample_lines` sentences.
    args = dict(
        input=str(norm_path), model_prefix=str(model_path.with_suffix("")), model_type="unigram",
        vocab_size=vocab_size, character_coverage=0.9999, input_sentence_size=sample_lines,
        shuffle_input_sentence=True, num_threads=threads, minloglevel=2,
    )
    try:
        spm.SentencePieceTrainer.train(**args)
    except RuntimeError as err:
        hint = (" -- the text is too small for this vocabulary: lower --vocab-size"
                if "vocab" in str(err).lower() else "")
        raise LMTrainingError(f"sentencepiece training on {norm_path} failed: {err}{hint}") from None
    model_path.with_suffix("").with_suffix(".vocab").unlink(missing_ok=True)  # only the .model is used
    return {k: v for k, v in args.items() if k not in ("input", "model_prefix", "minloglevel")}


def _run_lmplz(cmd: list[str], norm_path: Path, sp_path: Path, arpa_path: Path, log_path: Path, *,
               total_lines: int, threads: int, progress: bool) -> int:
    """Encode ``norm_path`` into space-joined pieces, streamed into lmplz; returns the token count."""
    import sentencepiece as spm
    from tqdm import tqdm

    sp = spm.SentencePieceProcessor(model_file=str(sp_path))
    tokens = 0
    # lmplz's stderr (its progress bars) goes to a file: a PIPE nobody reads could fill and block it.
    with open(arpa_path, "wb") as arpa, open(log_path, "wb") as err_log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=arpa, stderr=err_log)
        try:
            with open(norm_path, encoding="utf-8") as fin, tqdm(
                total=total_lines, unit=" lines", desc="encode+lmplz", disable=not progress,
            ) as bar:
                batch: list[str] = []
                for line in fin:
                    batch.append(line.rstrip("\n"))
                    if len(batch) == _ENCODE_BATCH:
                        tokens += _feed(proc, sp, batch, threads)
                        bar.update(len(batch))
                        batch = []
                if batch:
                    tokens += _feed(proc, sp, batch, threads)
                    bar.update(len(batch))
            proc.stdin.close()
        except BrokenPipeError:
            # lmplz died early; its exit code and stderr below say why. Closing the pipe would
            # flush into the dead process again, so drop the buffered rest.
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        returncode = proc.wait()
    if returncode != 0:
        raise LMTrainingError(f"lmplz failed (exit {returncode}): {shlex.join(cmd)}\n{_tail(log_path)}")
    return tokens


def _feed(proc: subprocess.Popen, sp, lines: list[str], threads: int) -> int:
    pieces = sp.encode(lines, out_type=str, num_threads=threads)
    proc.stdin.write("".join(" ".join(p) + "\n" for p in pieces).encode("utf-8"))
    return sum(len(p) for p in pieces)


def _run_checked(cmd: list[str], stage: str, log_path: Path) -> None:
    with open(log_path, "wb") as err_log:
        returncode = subprocess.run(cmd, stdout=err_log, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        raise LMTrainingError(f"{stage} failed (exit {returncode}): {shlex.join(cmd)}\n{_tail(log_path)}")


def _display(cmd: list[str], work: Path) -> str:
    """A command line for lm_meta.json: the temporary directory (gone afterwards) shown as $TMP."""
    return shlex.join(cmd).replace(str(work), "$TMP")


def _tail(path: Path, lines: int = 20) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return "".join(deque(f, maxlen=lines)).rstrip()


def _arpa_counts(arpa_path: Path) -> dict[str, int]:
    """The ``ngram N=count`` lines of the ARPA header."""
    counts = {}
    with open(arpa_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("ngram "):
                order, count = line[6:].strip().split("=")
                counts[order] = int(count)
            elif counts and not line.strip():
                break
    if not counts:
        raise LMTrainingError(f"lmplz wrote no ARPA header to {arpa_path}")
    return counts


# -- publishing and reuse -----------------------------------------------------------------------


def _publish(staging: Path, out_dir: Path, meta: dict, names: list[str]) -> None:
    """Move finished files from ``staging`` into ``out_dir``; ``lm_meta.json`` goes last.

    A fresh ``out_dir`` appears in one rename (``atomic_dir``). An existing one may hold other
    files, so it is not replaced: each model file is replaced atomically, the old meta removed
    first, so an interruption between renames leaves a directory without ``lm_meta.json``, which
    the next run retrains.
    """
    if not out_dir.exists():
        with atomic_dir(out_dir) as fresh:
            for name in names:
                os.replace(staging / name, fresh / name)
            write_json_atomic(fresh / META_NAME, meta)
        return
    (out_dir / META_NAME).unlink(missing_ok=True)
    for name in names:
        os.replace(staging / name, out_dir / name)
    write_json_atomic(out_dir / META_NAME, meta)


def _existing_meta(out_dir: Path, key: dict, names: list[str]) -> dict | None:
    """The meta of a model in ``out_dir`` made from ``key`` (text hash, options) whose files are
    intact, else None (retrain)."""
    meta_path = out_dir / META_NAME
    if not meta_path.is_file():
        return None
    try:
        meta = read_json(meta_path)
    except ValueError:
        return None
    if not markers.matches(meta, key):
        return None
    # The key says what the model was made from; the hashes say the files are still that model
    # (a copied-over or truncated file must not be trusted).
    for entry in meta["files"].values():
        if entry["name"] in names:
            path = out_dir / entry["name"]
            if not path.is_file() or provenance.hash_file(path) != entry["sha256"]:
                return None
    return meta
