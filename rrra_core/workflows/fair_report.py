"""The fair comparison's result files: ``<stem>.json`` (the summary and every number) and ``<stem>.md`` (tables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rrra_core.analysis.results_view import target_verdict, tuning_seed_full_rerank
from rrra_core.runtime.runs import cpu_model, write_json_atomic
from rrra_core.workflows.fair import (
    BASELINES,
    FULL,
    METHOD_NAMES,
    REFERENCES,
    RERANK_ONLY,
    RERANK_TRIALS,
    TRIALS,
    summarize,
)

__all__ = ["write_result", "render_markdown", "target_verdict"]

_TABLE_METRICS = ("nDCG@10", "R@1", "R@10", "R@100", "AnswerRecall@1", "AnswerRecall@5")


def write_result(stem: Path, parts: list[dict[str, Any]], command: str) -> dict[str, Any]:
    """Summarize ``parts`` into ``<stem>.json`` and ``<stem>.md``, headed by the commands that made them."""
    import torch

    commands = list(dict.fromkeys(c for p in parts for c in p.get("commands", []))) or [command]
    result = {
        "command": commands[0] if len(commands) == 1 else " ; ".join(commands),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        **summarize(parts),
        "compute_seconds": round(sum(p.get("seconds") or 0.0 for p in parts), 1),
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stem.with_suffix(".json"), result)
    stem.with_suffix(".md").write_text(render_markdown(result), encoding="utf-8")
    return result


def _cell(stat: Mapping[str, Any] | None, seeds: int) -> str:
    if not stat:
        return ""
    n = stat.get("n", 1)
    text = f"{stat['mean']:.4f} ± {stat['std']:.4f}" if n > 1 else f"{stat['mean']:.4f}"
    return text + (f" (n={n})" if n != seeds else "")


def _p(p: float | None) -> str:
    return "" if p is None else ("< 0.0001" if p < 1e-4 else f"{p:.4f}")


def _settings(t: Mapping[str, Any]) -> str:
    if "lambda_rr" in t and not t["lambda_rr"]:
        return "no reranking (λ_RR = 0)"
    return ", ".join(f"{k}={v}" for k, v in t.items())


def trial_label(key: str) -> str:
    """Trials are numbered from 1 in the tables; the no-reranking option is named."""
    return str(int(key) + 1) if key.isdigit() else key


def render_markdown(result: Mapping[str, Any]) -> str:
    cfg = result["config"]
    # Rows with fewer seeds than the most any row has are marked (n=k).
    seeds = max((c.get("n", 1) for row in result["methods"].values() for c in row.values()), default=1)
    out = [
        f"# Fair comparison on {Path(str(cfg['dataset'])).name}",
        "",
        f"Made by: `{result['command']}`",
        "",
        f"Machine: {result['machine']['cpu']} ({result['machine']['cpu_count']} cores); "
        f"wall time {result['compute_seconds'] / 60:.0f} min, summed over the seed processes.",
        "",
        "## Verdict",
        "",
        target_verdict(result),
        "",
    ]
    unfinished = [p for p in result["parts"] if not p["finished"]]
    if unfinished:
        out += [
            "**Incomplete**: seed(s) "
            + ", ".join(str(p["seed"]) for p in unfinished)
            + " not finished; rows with fewer seeds are marked (n=k). The same command resumes them.",
            "",
        ]
    first = result["parts"][0]
    out += [
        "## Setup",
        "",
        f"- {first['train_queries']} training queries, {first['dev_queries']} dev queries "
        f"({cfg['dev_fraction']:.0%} of the training queries, carved per seed), {first['test_queries']} test queries; "
        f"seeds finished: {', '.join(map(str, result['seeds_done'])) or 'none'}.",
        f"- Every setting below was chosen on seed {result['tuning']['seed']}'s dev split by nDCG@10; "
        "the test split was read once per seed, for the chosen settings only.",
        f"- Phase 1: {cfg['p1_epochs']} epoch(s); phase 2: {cfg['p2_epochs']} epochs, best held-out epoch kept; "
        f"phase 3: {cfg['p3_epochs']} epochs, pool re-mined every epoch, batch {cfg['batch_size']}, "
        f"{cfg['n_hard']} hard negative(s) per query; documents cut at {cfg['doc_max_length']} word pieces.",
        f"- The best baseline is the tuned one with the highest test mean among {', '.join(BASELINES)} "
        "(the strongest opponent: conservative for RRRA). The untuned references "
        f"({', '.join(REFERENCES)}) are in the table, and full RRRA is also tested against the best of them.",
        "",
        "## Test results (mean ± std over seeds)",
        "",
    ]
    methods = result["methods"]
    cols = [m for m in _TABLE_METRICS if any(m in v for v in methods.values())]
    out += ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in methods.items():
        out.append(f"| {name} | " + " | ".join(_cell(row.get(c), seeds) for c in cols) + " |")
    out += ["", "## Paired tests against the best baseline (over test queries, per-query mean over seeds)", ""]
    out += [
        "| treatment | control | metric | Δ | p (paired t, ranx) | p (Fisher randomization) | queries | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in result["tests"]:
        delta = "" if t.get("delta") is None else f"{t['delta']:+.4f}"
        out.append(
            f"| {t['treatment']} | {t['control']} | {t['metric']} | {delta} | {_p(t['p_t'])} | "
            f"{_p(t['p_fisher'])} | {t['queries']} | {t['seeds']} |"
        )
    out += _tuning_lines(result)
    out += _full_rerank_lines(result.get("full_rerank_choices") or [])
    out += _gradient_lines(result.get("gradients") or {})
    warnings = [(p["seed"], w) for p in result["parts"] for w in ((p.get("adapter_fit") or {}).get("warnings") or [])]
    if warnings:
        out += ["", "## Warnings", ""] + [f"- seed {s}: phase-2 adapter: {w}" for s, w in warnings]
    out += [
        "",
        f"Trial grids: samplers {', '.join(f'{m}: {len(v)}' for m, v in TRIALS.items())}; "
        f"reranking {len(RERANK_TRIALS)} (signal, λ_RR) pairs; the first {cfg['trials']} of each were run. "
        "Full RRRA reranks only when the per-run rule finds a setting that beats no reranking (λ_RR = 0, the "
        "retriever's own order) on the seed's dev split; reranking only, the reranker's ablation, always reranks.",
        "",
    ]
    return "\n".join(out)


def _tuning_lines(result: Mapping[str, Any]) -> list[str]:
    """The tuning seed's dev trials per method, the chosen one marked."""
    out = ["", "## Tuning on dev (equal trials per method)", ""]
    chosen = result["tuning"]["chosen"]
    # Full RRRA's rerank is the per-run rule's on each seed's dev split: the tuning seed's own choice is marked.
    tune_full = tuning_seed_full_rerank(result)
    labels = {
        **{m: METHOD_NAMES[m] for m in TRIALS},
        "rerank_only": f"{RERANK_ONLY} (on the phase-1 retrieval)",
        "full_rerank": f"{FULL}: reranking of the chosen RRRA encoder",
    }
    if result.get("dev_phase1"):
        out += [f"Phase 1 on dev (no hard negatives): nDCG@10 {result['dev_phase1']['nDCG@10']:.4f}.", ""]
    out += ["| method | trial | settings | dev nDCG@10 | dev R@1 | chosen |", "|---|---|---|---|---|---|"]
    for method, trials in result["tuning"]["trials"].items():
        for key, t in trials.items():
            mark = "✓" if chosen.get(method) == key or (method == "full_rerank" and tune_full == key) else ""
            out.append(
                f"| {labels.get(method, method)} | {trial_label(key)} | {_settings(t['settings'])} | "
                f"{t['dev']['nDCG@10']:.4f} | {t['dev']['R@1']:.4f} | {mark} |"
            )
    return out


def _full_rerank_lines(choices: list[Mapping[str, Any]]) -> list[str]:
    """Full RRRA's rerank per seed, as the per-run rule chose it on that seed's dev split, and what it did on test."""
    if not choices:
        return []
    out = [
        "",
        "## Full RRRA's rerank per seed (rrra_core/retrieval/rerank_choice.py, on each seed's own dev split)",
        "",
        "Each seed's RRRA encoder reranks only when a setting beats no reranking on its dev queries by a paired "
        "randomization test, Holm-corrected over the settings, at the rule's level: the rule every run and the "
        "ordinary benchmark apply.",
        "",
        "| seed | dev queries | choice | best on dev: gain over off, Holm p | level | test full − resampling only: "
        "nDCG@10 | R@1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in choices:
        gain, p = c.get("best_dev_gain"), c.get("best_p_holm")
        best = f"{c['best']}: {gain:+.4f}, {p:.3g}" if gain is not None and p is not None else ""
        d = c["test_full_minus_resampling"]
        out.append(
            f"| {c['seed']} | {c['n_dev']} | **{c['setting']}** | {best} | {c['level']:g} | "
            f"{d['nDCG@10']:+.4f} | {d['R@1']:+.4f} |"
        )
    return out


def _gradient_lines(grads: Mapping[str, Any]) -> list[str]:
    """The gradient-log table: what each chosen sampler fed the encoder, per category."""
    if not grads:
        return []
    out = [
        "",
        "## What each sampler fed the encoder (phase-3 gradient log, chosen settings, mean over seeds)",
        "",
        "Hard negatives sampled per category, and their mean gradient magnitude p_j/τ. `planted_fn` are hidden "
        "positives drawn as negatives: the false negatives RRRA's resampling is meant to avoid.",
        "",
        "| method | category | sampled | mean p_j/τ |",
        "|---|---|---|---|",
    ]
    for method, cats in grads.items():
        for cat, v in cats.items():
            out.append(f"| {method} | {cat} | {v['count']['mean']:.0f} | {v['mean']['mean']:.3f} |")
    return out
