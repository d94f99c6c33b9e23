"""``bench study --dry-run``: what the study would do, with token budgets and step counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertin_bench import markers
from study.config import CONTROL, FLOOR
from study.layout import MARK

if TYPE_CHECKING:
    from study.run import Study


def plan(study: "Study") -> list[str]:
    cfg, lay = study.cfg, study.layout
    c, s, p, b = cfg.corpus, cfg.sampling, cfg.pretraining, cfg.benchmark

    def state(out, key) -> str:
        return "done" if markers.is_done(out, key, MARK) else "to do"

    if c.heldout_per_source:  # (heldout_docs is then unused)
        held = f", the first {c.heldout_per_source:,} documents of each {c.source_key!r} held out as every arm's common evaluation text"
    elif c.heldout_docs:
        held = f", first {c.heldout_docs:,} documents held out as every arm's common evaluation text"
    else:
        held = ""
    lines = [f"study {cfg.name}: work dir {lay.work}, results {lay.results}",
             f"corpus: {c.input}{held}" + (f", then {c.limit:,} documents" if c.limit else ""),
             f"LM: {cfg.lm.model_dir} (mode {cfg.lm.mode}): score the corpus once "
             f"[{state(lay.scored_dir, study.score_key())}], boundaries from {s.boundary_docs:,} documents"]
    n_docs = c.limit or c.approx_docs
    for arm in cfg.sampled_arms:
        frac = 1.0 if arm == CONTROL else s.target_fraction
        kept = f"~{int(n_docs * frac):,} documents" if n_docs else "size known after sampling"
        if n_docs and c.approx_tokens_per_doc:
            kept += f", ~{n_docs * frac * c.approx_tokens_per_doc:,.0f} tokens"
        lines.append(f"  sample {arm:<9} keep {frac:.0%} -> {kept}  [{state(lay.sample_dir(arm), study.sample_key(arm))}]")
    pcfg = study.pretrain_config(cfg.sampled_arms[0], cfg.pretraining.seed_list[0])
    t = pcfg.training
    per_step = t.batch_size * t.seq_len
    lines.append(f"tokenizer: {study.tokenizer_path()}" + ("" if cfg.tokenizer.path else
                 f" (trained once, vocab {cfg.tokenizer.vocab_size:,})"))
    lines.append(f"pre-training: preset {p.preset}, {pcfg.model.num_hidden_layers} layers x {pcfg.model.hidden_size} "
                 f"hidden, vocab {pcfg.model.vocab_size:,}")
    lines.append(f"  budget {p.train_tokens:,} tokens per arm = {pcfg.total_steps:,} steps x {t.batch_size} "
                 f"sequences x {t.seq_len} tokens ({per_step:,} tokens/step; warmup {pcfg.schedule.warmup_steps:,})")
    if n_docs and c.approx_tokens_per_doc:
        epochs = p.train_tokens / (n_docs * s.target_fraction * c.approx_tokens_per_doc)
        lines.append(f"  ~{epochs:.2f} epochs over each {s.target_fraction:.0%} sample")
    seeds = cfg.pretraining.seed_list
    lines.append(f"  {len(seeds)} pre-training seed(s) per arm ({', '.join(map(str, seeds))}): the unit of replication"
                 + ("" if len(seeds) > 1 else "; with one seed, strategy differences cannot be tested"))
    for arm, seed in cfg.units:
        what = "floor: initialisation only, never pre-trained" if arm == FLOOR else "pre-train"
        lines.append(f"  {what} {arm} s{seed} -> {lay.model_dir(arm, seed)}  "
                     f"[{state(lay.model_stage_dir(arm, seed), study.pretrain_key(arm, seed))}]")
    e = cfg.evaluation
    if e.by_source:
        lines.append("evaluation: MLM loss/accuracy by source on the held-out documents"
                     + (f" + {e.wiki_docs} Wikipedia paragraphs" if e.wiki else "")
                     + f", fixed masks (seed {e.mask_seed}), up to {e.max_blocks_per_doc} x {e.seq_len} tokens per document")
    lim = ""
    if b.limit_train or b.limit_eval:
        lim = f" (limits: train {b.limit_train}, eval {b.limit_eval})"
    n_models = len(cfg.units)
    lines.append(f"benchmark: {', '.join(b.tasks)} x {b.seeds} fine-tuning seeds x {n_models} models"
                 f" = {len(b.tasks) * b.seeds * n_models} fine-tuning runs{lim}")
    lines.append(f"tests: Multi-Bootstrap ({cfg.nboot} draws) vs the first strategy and the floor, Holm over the study")
    e = cfg.executor
    lines.append("units: one after another in this process" if study.serial else
                 f"units: each pre-training and fine-tuning run its own job on the {e.kind} executor, "
                 f"{e.workers} at a time" + (f", {e.gpus_per_task} GPU(s) each" if e.gpus_per_task else ""))
    lines.append(f"outputs: {lay.leaderboard_md}, comparison, figures/")
    return lines
