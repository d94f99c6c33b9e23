"""``build_leaderboard``: ``leaderboard.{csv,md,html}`` from the result files on disk and the
published (reported) scores.

The CSV is tidy, for pandas: one row per (model, setting, task, split, metric), with the model's
identity, limits, protocol, split and source in their own columns and scores in percent
(:data:`COLUMNS` is its data dictionary; ``benchmark/RESULTS_SCHEMA.md`` prints it). The Markdown
and HTML pages are views of that table: one row per (model, setting, split), one column per task
(its main score), one table per split in Markdown, a split column in HTML, so a validation number
never sits unlabelled among test numbers.

What makes a row:
- measured runs are keyed by model identity (``results.model_identity``: content hash or Hub id +
  commit), never by display name alone, and by the results folder they live in (``origin``: the
  suite's own ``runs/`` or a study's), task version, protocol, limits and hyperparameters; only runs
  equal in all of these are averaged (mean and sample std over seeds);
- runs of a task version the registry no longer has are left out (and counted in a warning);
- reported rows come from :mod:`benchmark.reported`, one per (model, source table).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from bertin_bench.io import write_text_atomic

from benchmark import results
from benchmark.reported import REPORTED
from benchmark.tasks import GROUPS, TASKS, TOKEN

log = logging.getLogger(__name__)

# The metrics each row family gets in the CSV (the main score is one of them; `main` says which).
METRICS = {TOKEN: ("accuracy", "f1"), "sequence-classification": ("accuracy", "macro_f1")}
SPLIT_ORDER = ("test", "validation", "validation-heldout", "unstated")

# The CSV's columns, in order: (name, type, meaning). The one definition of the format; the data
# dictionary in RESULTS_SCHEMA.md is generated from it.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "str", "display name (registry name, Hub id, `--model-name` or directory name); `name#<8 chars>` when "
                     "two different models share a name"),
    ("kind", "str", "`measured` (a run of this suite) or `reported` (a published number)"),
    ("origin", "str", "measured: the results folder the runs are in, relative to the leaderboard's folder (`.` = its "
                      "own `runs/`, `studies/<name>` = a study); reported: the source table"),
    ("task", "str", "registry task name"),
    ("task_version", "str", "registry task version (measured; empty for reported)"),
    ("split", "str", "`test`; `validation` (measured: the best epoch's dev score, the one used to pick the epoch, "
                     "so optimistic); `validation-heldout` (measured, `dev-train` protocol: the held-out slice of "
                     "validation that picked the epoch); `unstated` (the source does not say)"),
    ("metric", "str", "`accuracy` (token accuracy for POS tagging), `f1` (seqeval entity F1 for NER, as the source "
                      "names it for reported rows), `macro_f1` (sequence tasks)"),
    ("main", "bool", "`metric` is the task's main score (the one the Markdown and HTML pages show)"),
    ("score", "float", "the score in percent (0-100): mean over `n` runs"),
    ("std", "float", "sample standard deviation over the `n` runs, in percent; empty when `n` = 1"),
    ("n", "int", "runs averaged (fine-tuning seeds); 1 for a published number"),
    ("protocol", "str", "`official` (trained on the train split) or `dev-train` (no train split: trained on "
                        "validation minus a held-out slice, scored on test; not comparable with `official`)"),
    ("limit_train", "int", "`--limit-train` of subsampled runs; empty for full runs"),
    ("limit_eval", "int", "`--limit-eval`; empty for full runs"),
    ("setting", "str", "fine-tuning hyperparameters (measured) or the source's description"),
    ("seeds", "str", "measured: the seeds averaged; reported: what the source says about runs"),
    ("hub_id", "str", "Hub id of the model (empty for local directories)"),
    ("revision", "str", "the Hub commit scored (resolved at load time, else the revision asked for), or the tag the "
                        "source names; empty when unknown"),
    ("weights", "str", "the weight file loaded: `flax`, `safetensors` or `pt`; empty for reported"),
    ("identity", "str", "`benchmark.results.model_identity`: `local:<content hash>` or `hub:<id>[@<commit>]`"),
    ("source", "str", "reported: URL or citation of the number; measured: empty"),
    ("note", "str", "reported: `*` (a repeated run, BERTIN's card) and caveats; measured: file overrides"),
    ("finetune_seconds", "float", "measured: fine-tuning seconds summed over the `n` runs (compilation included)"),
    ("pretraining_tokens", "int", "measured, our checkpoints: pre-training tokens seen"),
)
COLUMN_NAMES = tuple(c[0] for c in COLUMNS)


def data_dictionary() -> list[str]:
    """Lines of the CSV's data dictionary (a section of RESULTS_SCHEMA.md)."""
    lines = [
        "## Leaderboard CSV (`results/leaderboard.csv`)",
        "",
        "`bench leaderboard` writes `leaderboard.csv` (this table), `leaderboard.md` and `leaderboard.html` (views:",
        "one row per model, setting and split, one column per task's main score). One CSV row per (model, setting,",
        "task, split, metric); scores in percent. In pandas:",
        "`df[(df.split == 'test') & df.main].pivot_table(index='model', columns='task', values='score')`.",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {kind} | {doc} |" for name, kind, doc in COLUMNS]
    return lines


# --- collecting ---------------------------------------------------------------------------------


def result_roots(results_dir: str | Path) -> list[tuple[str, Path]]:
    """(origin, folder) of every results folder under ``results_dir``: itself and any folder below
    holding a ``runs/`` (the studies' ``studies/<name>``)."""
    base = Path(results_dir)
    roots = sorted({p.parent for p in base.glob("**/runs") if p.is_dir()})
    return [(Path(os.path.relpath(r, base)).as_posix(), r) for r in roots]


def _setting(hp: dict) -> str:
    return (f"lr {hp.get('learning_rate'):g}, batch {hp.get('batch_size')}, {hp.get('epochs')} epochs, "
            f"max length {hp.get('max_length')}, warmup {hp.get('warmup_ratio'):g}, weight decay {hp.get('weight_decay'):g}")


def _pct(x: float) -> float:
    return round(100 * float(x), 4)


def measured_rows(results_dir: str | Path) -> list[dict]:
    """The CSV rows of every result under ``results_dir`` (see :data:`COLUMNS`)."""
    items, stale = [], 0
    for origin, root in result_roots(results_dir):
        for _, res in results.iter_results(root):
            spec = TASKS.get(res.task.name)
            if spec is None or spec.version != res.task.version:
                stale += 1
                continue
            items.append((origin, res))
    if stale:
        log.warning("%d result files are for task versions not in the registry; left out", stale)
    # the display name of each result's model group (one name over two identities is split there)
    name_of = {id(r): g.name for g in results.group_by_model(res for _, res in items).values() for r in g.results}
    groups: dict[tuple, list] = defaultdict(list)
    for origin, res in items:
        t = res.task
        key = (origin, name_of[id(res)], results.model_identity(res), t.name, t.version, t.protocol, res.limits,
               json.dumps(res.hyperparameters, sort_keys=True), json.dumps(t.file_overrides, sort_keys=True))
        groups[key].append(res)
    rows = []
    for (origin, name, identity, task, version, protocol, limits, _, _), runs in groups.items():
        first, spec = runs[0], TASKS[task]
        m = first.model
        dev_split = "validation" if protocol == "official" else "validation-heldout"
        common = dict(
            model=name, kind="measured", origin=origin, task=task, task_version=version, n=len(runs),
            protocol=protocol, limit_train=limits[0], limit_eval=limits[1], setting=_setting(first.hyperparameters),
            seeds=",".join(str(s) for s in sorted(r.seed for r in runs)), hub_id=m.hub_id or "",
            revision=getattr(m, "resolved_revision", None) or m.revision or "",
            weights=getattr(m, "weights", None) or ("pt" if m.from_pt else "flax"), identity=identity, source="",
            note="; ".join(f"{s}_file={p}" for s, p in sorted(first.task.file_overrides.items())),
            finetune_seconds=round(sum(r.timing.train_seconds for r in runs), 1),
            pretraining_tokens=m.pretraining_tokens, repeated=False,
        )
        for split, metrics_of in ((dev_split, lambda r: r.dev.metrics), ("test", lambda r: r.test.metrics)):
            for metric in METRICS[spec.task_type]:
                scores = np.array([metrics_of(r)[metric] for r in runs if metric in metrics_of(r)], dtype=float)
                if len(scores) != len(runs):
                    continue  # a metric some runs lack is not averaged over the others
                rows.append({**common, "split": split, "metric": metric, "main": metric == spec.main_score,
                             "score": _pct(scores.mean()), "std": _pct(scores.std(ddof=1)) if len(scores) > 1 else None})
    return rows


def reported_rows() -> list[dict]:
    """The CSV rows of the published scores (:mod:`benchmark.reported`)."""
    rows = []
    for rep in REPORTED:
        note = "; ".join(x for x in ("* repeated run" if rep.repeated else "", rep.note) if x)
        rows.append(dict(
            model=rep.model, kind="reported", origin=rep.table, task=rep.task, task_version="", split=rep.split,
            metric=rep.metric, main=rep.metric == TASKS[rep.task].main_score, score=_pct(rep.value), std=None, n=1,
            protocol=rep.protocol, limit_train=None, limit_eval=None, setting=rep.setting, seeds=rep.seeds,
            hub_id=rep.hub_id, revision=rep.revision or "", weights="", identity=f"hub:{rep.hub_id}" +
            (f"@{rep.revision}" if rep.revision else ""), source=rep.source, note=note, finetune_seconds=None,
            pretraining_tokens=None, repeated=rep.repeated,
        ))
    return rows


# --- the table ----------------------------------------------------------------------------------


def build_leaderboard(results_dir: str | Path = "results", group: str = "bertin", include_reported: bool = True,
                      write: bool = True, html_page: bool | None = None):
    """The leaderboard as a tidy DataFrame (the CSV); with ``write`` also ``leaderboard.csv``, ``.md``
    and, when ``html_page`` (default: with the reported rows, i.e. the published board), ``.html``
    in ``results_dir``. Every results folder under ``results_dir`` counts (``result_roots``)."""
    import pandas as pd

    if group not in GROUPS:
        raise KeyError(f"unknown task group {group!r}; valid: {', '.join(GROUPS)}")
    rows = measured_rows(results_dir)
    if include_reported:
        rows += reported_rows()
    df = pd.DataFrame.from_records(rows, columns=[*COLUMN_NAMES, "repeated"])
    df = _sorted(df)
    for col in ("n", "limit_train", "limit_eval", "pretraining_tokens"):
        df[col] = df[col].astype("Int64")  # integers, blank when absent (not 3.0 / NaN)
    df["main"] = df["main"].astype(bool)
    if write:
        out = Path(results_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "leaderboard.csv", df[list(COLUMN_NAMES)].to_csv(index=False))
        board = wide(df, group)
        write_text_atomic(out / "leaderboard.md", to_markdown(board, group))
        if include_reported if html_page is None else html_page:
            write_text_atomic(out / "leaderboard.html", to_html(board, group, figures(out)))
    return df[list(COLUMN_NAMES)]


def _sorted(df):
    if df.empty:
        return df
    order = {s: i for i, s in enumerate(SPLIT_ORDER)}
    keys = df.assign(_k=(df["kind"] != "measured").astype(int), _s=df["split"].map(order),
                     _t=df["task"].map({t: i for i, t in enumerate(TASKS)}), _l=df["limit_train"].fillna(0))
    keys = keys.sort_values(["_k", "origin", "model", "_l", "_s", "_t", "metric", "setting"], kind="stable")
    return keys.drop(columns=["_k", "_s", "_t", "_l"]).reset_index(drop=True)


def task_columns(df, group: str) -> list[str]:
    """The group's tasks, then any other task with rows, in registry order."""
    tasks = list(GROUPS[group])
    seen = set(df["task"]) if len(df) else set()
    return tasks + [t for t in TASKS if t in seen and t not in tasks]


def wide(df, group: str) -> dict:
    """The view the pages show: one row per (kind, origin, model, limits, split), one cell per task
    holding its main score (or, for a published number in another metric, that one, labelled)."""
    tasks = task_columns(df, group)
    rows: dict[tuple, dict] = {}
    for rec in df.to_dict("records"):
        limits = (_int(rec["limit_train"]), _int(rec["limit_eval"]))
        key = (rec["kind"], rec["origin"], rec["model"], limits, rec["split"])
        row = rows.setdefault(key, dict(kind=rec["kind"], origin=rec["origin"], model=rec["model"], limits=limits,
                                        split=rec["split"], cells={}, protocols=set(), source=rec["source"],
                                        seconds=0.0, tokens=_int(rec["pretraining_tokens"]), settings=defaultdict(set)))
        cell = dict(score=rec["score"], std=rec["std"], n=int(rec["n"]), metric=rec["metric"], main=bool(rec["main"]),
                    protocol=rec["protocol"], repeated=isinstance(rec.get("repeated"), (bool, np.bool_)) and bool(rec.get("repeated")), setting=rec["setting"],
                    measured=rec["kind"] == "measured")
        old = row["cells"].get(rec["task"])
        # The main metric wins; among measured settings of one task, the one with most runs.
        if old is None or (cell["main"], cell["n"]) > (old["main"], old["n"]):
            if old is not None and old["main"] and cell["main"]:
                log.warning("%s %s: several hyperparameter settings; the pages show the one with most runs "
                            "(%s), the CSV has all", rec["model"], rec["task"], cell["setting"])
            row["cells"][rec["task"]] = cell
        row["settings"][rec["task"]].add(rec["setting"])
    for row in rows.values():
        row["protocols"] = sorted({c["protocol"] for c in row["cells"].values()})
        cells = [row["cells"].get(t) for t in GROUPS[group]]
        row["avg"] = (float(np.mean([c["score"] for c in cells])) if all(c is not None and c["main"] for c in cells)
                      else None)
        if row["kind"] == "measured":
            seconds = df[(df["kind"] == "measured") & (df["origin"] == row["origin"]) & (df["model"] == row["model"])
                         & (df["split"] == "test") & df["main"]]
            seconds = seconds[seconds["limit_train"].fillna(-1).eq(row["limits"][0] if row["limits"][0] else -1)]
            row["seconds"] = float(seconds["finetune_seconds"].sum())
    return {"tasks": tasks, "rows": list(rows.values())}


def _int(x):
    """An int, or None for the blanks of a nullable integer column (pandas NA, NaN, None)."""
    try:
        return None if x is None or bool(x != x) else int(x)
    except TypeError:  # pandas.NA refuses bool()
        return None


def _cell_text(c: dict | None) -> str:
    """``83.19 ± 0.31 (n=3)``; a published number: ``96.39*``, with its metric when it is not the main one."""
    if c is None:
        return ""
    text = f"{c['score']:.2f}"
    if c["std"] is not None and not _isnan(c["std"]):
        text += f" ± {c['std']:.2f}"
    text += "*" if c["repeated"] else ""
    labels = [f"n={c['n']}"] if c["measured"] else []
    if not c["main"]:
        labels.append(c["metric"])
    if c["protocol"] != "official":
        labels.append(c["protocol"])
    return text + (f" ({', '.join(labels)})" if labels else "")


def _label(row: dict) -> str:
    lt, le = row["limits"]
    if (lt, le) == (None, None):
        return row["model"]
    return f"{row['model']} [subsampled: train≤{lt or 'all'}, eval≤{le or 'all'}]"


_SPLIT_TITLE = {
    "test": "Test split",
    "validation": "Validation split (measured: the best epoch's dev score, which picked the epoch; published rows: "
                  "the source's validation runs)",
    "validation-heldout": "Held-out slice of validation (measured, `dev-train` protocol: the slice that picked the epoch)",
    "unstated": "Split not stated by the source",
}


def to_markdown(board: dict, group: str) -> str:
    tasks = board["tasks"]
    lines = [
        "# Leaderboard",
        "",
        "Main score per task, in percent: mean ± sample std over fine-tuning seeds (n = runs; no spread when n = 1). "
        "Built by `bench leaderboard` from the result files and the published scores (`benchmark/reported.py`); "
        "every number with its split, metric and protocol is in `leaderboard.csv` (data dictionary: "
        "`benchmark/RESULTS_SCHEMA.md`). One table per split: a validation number never shares a table with test "
        "numbers. `dev-train` cells: no train split available, trained on validation minus a held-out slice, scored "
        "on test; never comparable with `official` numbers. A metric named in a cell is not the task's main score "
        f"(the source reported another). `avg {group}` is empty unless every task of the group ({', '.join(GROUPS[group])}) "
        "has its main score. Rows in *italics* are published numbers, not runs of this suite; `*` = a repeated run "
        "(BERTIN's card). Subsampled rows are quick runs on a slice of the data.",
    ]
    head = ["model", "from"] + tasks + [f"avg {group}", "fine-tune s", "pre-train tokens"]
    sources = set()
    for split in SPLIT_ORDER:
        rows = [r for r in board["rows"] if r["split"] == split]
        if not rows:
            continue
        lines += ["", f"## {_SPLIT_TITLE[split]}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            reported = r["kind"] == "reported"
            if reported:
                sources.add(r["source"])
            cells = [f"*{_label(r)}*" if reported else _label(r), r["origin"]]
            cells += [_cell_text(r["cells"].get(t)) for t in tasks]
            cells.append("" if r["avg"] is None else f"{r['avg']:.2f}")
            cells.append(f"{r['seconds']:,.0f}" if r["seconds"] else "")
            cells.append(f"{r['tokens']:,}" if r["tokens"] else "")
            lines.append("| " + " | ".join(cells) + " |")
    if sources:
        lines += ["", "Published numbers from: " + "; ".join(sorted(sources)) + "."]
    return "\n".join(lines) + "\n"


def _isnan(x) -> bool:
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return False


# --- the HTML page ------------------------------------------------------------------------------


def figures(results_dir: Path) -> list[tuple[str, str]]:
    """(caption, path relative to the page) of every PNG under ``results_dir``: the studies' figures."""
    return [(p.relative_to(results_dir).with_suffix("").as_posix(), p.relative_to(results_dir).as_posix())
            for p in sorted(Path(results_dir).glob("**/*.png"))]


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;white-space:nowrap}
th{background:#eef;cursor:pointer;user-select:none}th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
tr.reported td{font-style:italic;color:#555}td.num{text-align:right;font-variant-numeric:tabular-nums}
.controls label{margin-right:1.2em}figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
figure img{max-width:420px;border:1px solid #ddd}p.note{max-width:60em;color:#444}
"""

# Sort by clicking a header (again: reverse); filters for split, protocol and kind. The state lives
# in the URL hash (#sort=<column>&dir=desc&split=test&protocol=official&kind=measured), so a link
# opens the same view, and a test can drive it without clicking.
_JS = """
(function(){
const table=document.getElementById('board'),body=table.tBodies[0],heads=[...table.tHead.rows[0].cells];
const sel={split:document.getElementById('f-split'),protocol:document.getElementById('f-protocol'),kind:document.getElementById('f-kind')};
function state(){const s={};location.hash.slice(1).split('&').forEach(kv=>{const [k,v]=kv.split('=');if(k)s[k]=decodeURIComponent(v||'');});return s;}
function apply(){
  const s=state();
  for(const k in sel){sel[k].value=s[k]||'';}
  const rows=[...body.rows];
  rows.forEach(r=>{let show=true;for(const k in sel){const v=sel[k].value;if(v&&!(' '+r.dataset[k]+' ').includes(' '+v+' '))show=false;}r.hidden=!show;});
  heads.forEach(h=>h.classList.remove('asc','desc'));
  const col=heads.findIndex(h=>h.dataset.key===s.sort);
  if(col>=0){
    const dir=s.dir==='asc'?1:-1;heads[col].classList.add(dir>0?'asc':'desc');
    const val=r=>{const c=r.cells[col],v=c.dataset.v;return v===undefined?c.textContent:(v===''?null:parseFloat(v));};
    rows.sort((a,b)=>{const x=val(a),y=val(b);if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      return (typeof x==='number'&&typeof y==='number')?dir*(x-y):dir*String(x).localeCompare(String(y));});
    rows.forEach(r=>body.appendChild(r));
  }
  document.getElementById('shown').textContent=rows.filter(r=>!r.hidden).length+' of '+rows.length+' rows';
}
function set(k,v){const s=state();if(v)s[k]=v;else delete s[k];location.hash=Object.entries(s).map(([a,b])=>a+'='+encodeURIComponent(b)).join('&');}
heads.forEach(h=>h.addEventListener('click',()=>{const s=state();set('dir',s.sort===h.dataset.key&&s.dir!=='asc'?'asc':'desc');set('sort',h.dataset.key);}));
for(const k in sel)sel[k].addEventListener('change',()=>set(k,sel[k].value));
window.addEventListener('hashchange',apply);apply();
document.body.dataset.ready='1';
})();
"""


def to_html(board: dict, group: str, figs: list[tuple[str, str]]) -> str:
    """One self-contained page: inline CSS and JS, no server, figures as relative links."""
    e = html.escape
    tasks = board["tasks"]
    cols = [("model", "model"), ("kind", "kind"), ("split", "split"), ("protocol", "protocol"), ("from", "origin")]
    cols += [(t, t) for t in tasks] + [(f"avg {group}", "avg"), ("fine-tune s", "seconds"), ("source", "source")]
    head = "".join(f'<th data-key="{e(k)}">{e(label)}</th>' for label, k in cols)
    body = []
    for r in board["rows"]:
        tds = [f"<td>{e(_label(r))}</td>", f"<td>{e(r['kind'])}</td>", f"<td>{e(r['split'])}</td>",
               f"<td>{e(' + '.join(r['protocols']))}</td>", f"<td>{e(r['origin'])}</td>"]
        for t in tasks:
            c = r["cells"].get(t)
            v = "" if c is None else f"{c['score']:.4f}"
            title = "" if c is None else ' title="' + e(f"{c['metric']}, {c['protocol']}, {c['setting']}") + '"'
            tds.append(f'<td class="num" data-v="{v}"{title}>{e(_cell_text(c))}</td>')
        avg, secs = r["avg"], r["seconds"]
        tds.append(f'<td class="num" data-v="{"" if avg is None else f"{avg:.4f}"}">{"" if avg is None else f"{avg:.2f}"}</td>')
        tds.append(f'<td class="num" data-v="{secs or ""}">{f"{secs:,.0f}" if secs else ""}</td>')
        tds.append(f"<td>{e(r['source'])}</td>")
        kind, split, protocols = e(r["kind"]), e(r["split"]), e(" ".join(r["protocols"]))
        body.append(f'<tr class="{kind}" data-split="{split}" data-protocol="{protocols}" data-kind="{kind}">'
                    + "".join(tds) + "</tr>")

    def options(key, values):
        opts = "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)
        return f'<label>{key} <select id="f-{key}"><option value="">all</option>{opts}</select></label>'

    splits = [s for s in SPLIT_ORDER if any(r["split"] == s for r in board["rows"])]
    protocols = sorted({p for r in board["rows"] for p in r["protocols"]})
    fig_html = "".join(f'<figure><a href="{e(path)}"><img src="{e(path)}" alt="{e(cap)}"></a>'
                       f"<figcaption>{e(cap)}</figcaption></figure>" for cap, path in figs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bertin-bench leaderboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>bertin-bench leaderboard</h1>
<p class="note">Main score per task in percent: mean ± sample std over fine-tuning seeds (n runs). Every row names its
split: <b>validation</b> numbers (the best epoch's dev score for our runs; BERTIN's card reports validation runs) are not
test numbers. <b>dev-train</b>: no train split, trained on validation minus a held-out slice. A metric named in a cell
is not the task's main score. Italic rows are published numbers, not runs of this suite; * = a repeated run. Click a
header to sort; the view is kept in the URL. All numbers: <a href="leaderboard.csv">leaderboard.csv</a>.</p>
<div class="controls">{options("split", splits)}{options("protocol", protocols)}{options("kind", ["measured", "reported"])}
<span id="shown"></span></div>
<table id="board"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<h2>Figures</h2>
{fig_html or "<p>No figures under this folder.</p>"}
<script>{_JS}</script>
</body></html>
"""
