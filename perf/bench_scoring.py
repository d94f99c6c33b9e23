"""Scoring speed: PerplexityScorer / `bench sample score` vs a straightforward ccnet implementation.

    python perf/bench_scoring.py            # 20,000 documents of web_es_mix.jsonl.gz
    python perf/bench_scoring.py --quick    # 2,000 documents, one repeat

(a) scoring alone, one core: ``PerplexityScorer(mode="ccnet").perplexities`` vs edugp's
    ``KenlmModel.get_perplexity`` transcribed (regex/char-loop normalization, ``encode_as_pieces``,
    per-line ``score``), one document at a time; perplexities must be identical.
(b) the whole ``bench sample score`` command on a JSONL file, one task, start-up included, vs a
    straightforward script that reads the JSONL, scores with the reference, writes JSONL.gz.
(c) ``bench sample score --tasks 2 --workers 2`` vs ``--tasks 1``.

Targets (issue 2): (a) >= 2.0x, (b) >= 1.5x, (c) >= 1.8x. Each timing is the best of --repeat runs
(the commands of (b)/(c) in interleaved rounds); on a shared machine the numbers are noisy, so the
relative figures matter more than docs/s.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bertin_bench import paths  # noqa: E402
from sampling.scorer import PerplexityScorer  # noqa: E402
from tests.sampling.ccnet_reference import KenlmModel  # noqa: E402

# The straightforward end-to-end peer of `bench sample score`: read, score one by one, write.
STRAIGHTFORWARD_SCRIPT = """
import gzip, json, sys
sys.path.insert(0, {repo!r})
from tests.sampling.ccnet_reference import KenlmModel
model = KenlmModel({lm!r}, {sp!r})
with open({src!r}, encoding="utf-8") as fin, gzip.open({dst!r}, "wt", encoding="utf-8") as fout:
    for line in fin:
        record = json.loads(line)
        record["perplexity"] = model.get_perplexity(record["text"])
        fout.write(json.dumps(record, ensure_ascii=False) + "\\n")
"""


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(cmd: list[str], env: dict) -> None:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{res.stderr[-3000:]}")


def read_perplexities(paths_: list[Path]) -> dict[str, float]:
    out = {}
    for p in paths_:
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                out[rec["text"]] = rec["perplexity"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2,000 documents, one repeat")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    if args.quick:
        args.docs, args.repeat = 2_000, 1
    paths.set_data_dir(args.data_dir)
    web = paths.data_path("web_es", "web_es_mix.jsonl.gz")
    lm_dir = paths.data_path("kenlm_es")
    lm, sp = str(lm_dir / "es.arpa.bin"), str(lm_dir / "es.sp.model")

    with gzip.open(web, "rt", encoding="utf-8") as f:
        lines = list(itertools.islice(f, args.docs))
    texts = [json.loads(line)["text"] for line in lines]
    n = len(texts)
    print(f"{n:,} documents of {web.name}, {sum(map(len, texts)) / n:,.0f} chars on average; best of {args.repeat}\n")

    # (a) scoring alone, in-process, one core
    reference = KenlmModel(lm, sp)
    scorer = PerplexityScorer(lm_dir, mode="ccnet")
    scorer.perplexity("warm up")  # load both models before timing
    t_ref, ref_pps = best_of(args.repeat, lambda: [reference.get_perplexity(t) for t in texts])
    t_ours, our_pps = best_of(args.repeat, lambda: [p for i in range(0, n, 256) for p in scorer.perplexities(texts[i:i + 256])])
    identical = ref_pps == our_pps

    # (b) + (c): whole commands in subprocesses, start-up included
    tmp = Path(tempfile.mkdtemp(prefix="bench_scoring_"))
    try:
        src = tmp / "input.jsonl"
        src.write_text("".join(lines), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO), "BERTIN_DATA_DIR": str(paths.data_dir())}
        bench = [sys.executable, "-m", "bertin_bench.cli", "sample", "score", "--mode", "ccnet", "--lm-dir", str(lm_dir)]
        tiny = tmp / "tiny.jsonl"  # 10 documents: what the command costs before any real work
        tiny.write_text("".join(lines[:10]), encoding="utf-8")

        def ours(tasks: int, source: Path = src):
            out = tmp / f"ours{tasks}_{source.stem}"
            shutil.rmtree(out, ignore_errors=True)
            run([*bench, "-o", str(out), "--tasks", str(tasks), "--workers", str(tasks), "-i", str(source)], env)
            return sorted((out / "data").glob("*.jsonl.gz"))

        def straightforward():
            dst = tmp / "straightforward.jsonl.gz"
            code = STRAIGHTFORWARD_SCRIPT.format(repo=str(REPO), lm=lm, sp=sp, src=str(src), dst=str(dst))
            run([sys.executable, "-c", code], env)
            return [dst]

        # Interleaved rounds (plain, 1 task, 2 tasks, start-up), best of each over the rounds: a
        # neighbour's load on this shared machine then hits every configuration alike instead of
        # whichever happened to run during it.
        commands = {"plain": straightforward, "cmd1": lambda: ours(1), "cmd2": lambda: ours(2),
                    "start": lambda: ours(1, tiny)}
        best = {name: (float("inf"), None) for name in commands}
        for _ in range(args.repeat):
            for name, fn in commands.items():
                best[name] = min(best[name], best_of(1, fn), key=lambda timed: timed[0])
        (t_plain, plain_out), (t_cmd1, cmd1_out), (t_cmd2, cmd2_out), (t_start, _) = best.values()
        plain_pp = read_perplexities(plain_out)
        same_cmd = plain_pp == read_perplexities(cmd1_out) == read_perplexities(cmd2_out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        ("(a) scoring alone, 1 core", "straightforward ccnet (per doc)", t_ref, "PerplexityScorer ccnet", t_ours, 2.0, identical),
        ("(b) `bench sample score`, 1 task", "read/score/write script", t_plain, "bench sample score --tasks 1", t_cmd1, 1.5, same_cmd),
        ("(c) 2 tasks vs 1", "bench sample score --tasks 1", t_cmd1, "--tasks 2 --workers 2", t_cmd2, 1.8, same_cmd),
    ]
    # The same ratio without the fixed start-up (imports, provenance, stats), measured on 10 docs.
    work1, work2 = t_cmd1 - t_start, t_cmd2 - t_start
    print(f"{'benchmark':34} {'baseline':32} {'s':>7} {'docs/s':>8}   {'ours':34} {'s':>7} {'docs/s':>8} {'speed-up':>9} {'target':>7}  identical")
    for name, base, tb, mine, tm, target, same in rows:
        speed = tb / tm
        flag = "ok" if speed >= target else "BELOW"
        print(f"{name:34} {base:32} {tb:7.2f} {n / tb:8.0f}   {mine:34} {tm:7.2f} {n / tm:8.0f} {speed:8.2f}x {target:6.1f}x {flag:5}  {same}")
    print(f"\nstart-up of `bench sample score` (10 documents): {t_start:.2f} s; without it, 2 tasks vs 1: "
          f"{work1:.2f} s / {work2:.2f} s = {work1 / work2:.2f}x")
    if not (identical and same_cmd):
        sys.exit("perplexities differ between implementations")


if __name__ == "__main__":
    main()
