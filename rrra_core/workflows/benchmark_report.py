"""The benchmark's result file as Markdown: one function per section of the table.

``scripts/benchmark.py`` writes ``<stem>.json`` (what was measured) and
renders ``<stem>.md`` from it with :func:`render_markdown`; ``--render`` redoes
only the second step, so a change here never needs a re-measurement.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["render_markdown"]

RETRIEVAL_METRICS = (
    "R@1",
    "R@5",
    "R@10",
    "R@50",
    "R@100",
    "nDCG@10",
    "RR@10",
    "AnswerRecall@1",
    "AnswerRecall@5",
    "AnswerRecall@20",
    "AnswerRecall@100",
)
BASELINES = ("BM25", "zero-shot", "phase 1 (in-batch)", "uniform top-K", "SimANS", "margin filter")
FULL_RRRA = "RRRA (resampling + reranking)"


def _fmt(cell: dict | None, digits: int = 3, seeds: int | None = None) -> str:
    """``mean ± std`` over seeds (the mean alone for one seed; a dash for none).

    A row with fewer seeds than the file's ``seeds`` says how many (``(n=1)``),
    so a ± never hides that it spans fewer runs than its neighbours.
    """
    if not cell or cell.get("n", 0) == 0 or (isinstance(cell.get("mean"), float) and math.isnan(cell["mean"])):
        return "–"
    fewer = f" (n={cell['n']})" if seeds is not None and cell["n"] < seeds else ""
    if cell["n"] > 1:
        return f"{cell['mean']:.{digits}f} ± {cell['std']:.{digits}f}{fewer}"
    return f"{cell['mean']:.{digits}f}{fewer}"


def _cell(text: str) -> str:
    """A Markdown table cell: a literal ``|`` (as in P(FN|neg)) would split the cell."""
    return str(text).replace("|", "\\|")


def _header(r: dict[str, Any]) -> list[str]:
    cfg, seeds, m = r["config"], r["seeds"], r["machine"]
    per_seed = ", ".join(f"{s['seconds'] / 60:.1f}" for s in seeds)
    lines = [
        f"# RRRA benchmark: {cfg['dataset']} ({r['preset']})",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Seeds run: {', '.join(str(s['seed']) for s in seeds)} (planned: {', '.join(map(str, cfg['seeds']))}). "
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch thread(s) per process. "
        f"Wall time {r['wall_seconds'] / 60:.1f} min (per seed: {per_seed} min).",
        "",
    ]
    if r.get("merged_from"):
        parts = r["merged_from"]
        lines += [
            f"Merged from {len(parts)} result files (per file: "
            + ", ".join(f"{p['wall_seconds'] / 60:.1f} min" for p in parts)
            + f"; {sum(p['wall_seconds'] for p in parts) / 60:.1f} min in all). Whether they ran one after another "
            "or side by side is not recorded in the files; the wall time above is the longest file's.",
            "",
        ]
    elif r.get("parallel_processes"):  # files merged before merged_from was recorded
        lines += [f"Merged from {r['parallel_processes']} result files; the wall time above is the longest file's.", ""]
    if r.get("complete") is False:
        unfinished = [str(s["seed"]) for s in seeds if s.get("complete") is False]
        finished = len(seeds) - len(unfinished)
        lines += [
            "**Incomplete**: "
            + (f"seed {', '.join(unfinished)} stopped part-way (its rows hold what it scored); " if unfinished else "")
            + f"{finished} of {len(cfg['seeds'])} planned seeds finished. "
            "The same command resumes it, reusing every finished phase.",
            "",
        ]
    return lines + [
        "Settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ".",
        "",
        f"Training queries: {seeds[0]['train_queries']}; false negatives in the truth set "
        f"(seed {seeds[0]['seed']}): {seeds[0]['planted']}.",
        "",
    ]


def _retrieval(methods: dict[str, dict[str, Any]], n_seeds: int | None = None) -> list[str]:
    keys = [k for k in RETRIEVAL_METRICS if any(k in v for v in methods.values())]
    lines = ["## Test retrieval (mean ± std over seeds)", "", "| method | " + " | ".join(keys) + " |"]
    lines.append("|---" * (len(keys) + 1) + "|")
    for name, vals in methods.items():
        lines.append(f"| {_cell(name)} | " + " | ".join(_fmt(vals.get(k), seeds=n_seeds) for k in keys) + " |")
    baselines = [n for n in methods if n in BASELINES]
    rrra = methods.get(FULL_RRRA)
    if rrra and baselines:
        lines.append("")
        dense = [n for n in baselines if n != "BM25"]
        for metric in ("nDCG@10", "R@1"):
            for pool, what in ((baselines, "baseline"), (dense, "dense baseline (same encoder)")):
                best = max(pool, key=lambda n, m=metric: methods[n].get(m, {}).get("mean", float("-inf")))
                diff = rrra[metric]["mean"] - methods[best][metric]["mean"]
                if abs(diff) < 5e-5:  # equal at the precision shown: a tie, not a loss "by +0.0000"
                    lines.append(f"- {metric}: full RRRA ties the best {what} ({best}).")
                    continue
                verdict = "beats" if diff > 0 else "does NOT beat"
                lines.append(f"- {metric}: full RRRA {verdict} the best {what} ({best}) by {diff:+.4f}.")
    return lines


def _detection(detection: dict[str, dict[str, Any]], first_seed: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## False-negative detection among mined hard negatives (phase-1 encoder, top-K)",
        "",
        "| score | AUROC | AP | P@50 | P@100 |",
        "|---|---|---|---|---|",
    ]
    for name, vals in detection.items():
        cells = " | ".join(_fmt(vals.get(k)) for k in ("AUROC", "AP", "P@50", "P@100"))
        lines.append(f"| {_cell(name)} | {cells} |")
    d0 = first_seed["detection"].get("adapter P(FN|neg) (full)", {})
    lines += [
        "",
        f"Candidates judged (seed {first_seed['seed']}): {d0.get('candidates', '–')} labelled negatives, "
        f"of which {d0.get('false_negatives', '–')} are true false negatives.",
    ]
    return lines


def _adapter_f1(adapter_f1: dict[str, dict[str, Any]]) -> list[str]:
    names = list(adapter_f1)
    cols = [k for k in ("F1 TP", "F1 FN", "F1 FP", "F1 TN", "macro_f1") if any(k in adapter_f1[n] for n in names)]
    lines = [
        "",
        "## Adapter four-class F1 on held-out training queries (label-conditioned, synthetic labels)",
        "",
        "| adapter | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for n in names:
        lines.append(f"| {_cell(n)} | " + " | ".join(_fmt(adapter_f1[n].get(k)) for k in cols) + " |")
    return lines


def _hitl(seed: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Human in the loop (seed {seed['seed']}): a reviewer labels the top N of the adapter's queue, "
        "labels are merged, RRRA retrains",
        "",
        "| N reviewed | false negatives found | nDCG@10 | R@1 | R@10 | R@100 |",
        "|---|---|---|---|---|---|",
    ]
    for row in seed["hitl"]:
        metrics = " | ".join(f"{row[k]:.4f}" for k in ("nDCG@10", "R@1", "R@10", "R@100"))
        lines.append(f"| {row['N']} | {row['found']} | {metrics} |")
    return lines


def _gradients(seed: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Gradient magnitude p_j/τ of sampled hard negatives (seed {seed['seed']})",
        "",
        "| sampler | category | count | mean | median | p90 |",
        "|---|---|---|---|---|---|",
    ]
    for sampler, cats in seed["gradients"].items():
        for cat, v in cats.items():
            stats = " | ".join(f"{v[k]:.3f}" for k in ("mean", "median", "p90"))
            lines.append(f"| {sampler} | {cat} | {v['count']} | {stats} |")
    return lines


def _rerank_choice(seeds: list[dict[str, Any]]) -> list[str]:
    """Full RRRA's rerank per seed, as its dev split chose it, and what it changed on test."""
    full, plain = "RRRA (resampling + reranking)", "RRRA resampling only"
    lines = [
        "",
        "## Full RRRA's rerank, chosen per seed on its dev split (rrra_core/retrieval/rerank_choice.py)",
        "",
        "| seed | run | dev queries | choice | best on dev: gain over off, Holm p | level "
        "| test nDCG@10 full − resampling only |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed in seeds:
        methods = seed.get("methods", {})
        delta = (
            f"{methods[full]['nDCG@10'] - methods[plain]['nDCG@10']:+.4f}"
            if full in methods and plain in methods
            else "–"
        )
        for run_id, c in seed["rerank_choice"].items():
            main = "-phase3-rrra-" in run_id  # the HITL rounds' runs are chosen too; only this one is in the table
            best = c["dev"].get(c.get("best") or "", {})
            state = f"{c['signal']}:{c['lambda_rr']:g}" if c["on"] else "off"
            evidence = f"{c.get('best')}: {best.get('delta', 0.0):+.4f}, {c.get('p_value') or 1.0:.3g}"
            lines.append(
                f"| {seed['seed']} | `{run_id}` | {c['n_dev']} | **{state}** | {evidence} | {c.get('level')} "
                f"| {delta if main else '–'} |"
            )
    return lines


def render_markdown(r: dict[str, Any]) -> str:
    """The result file ``r`` (as ``scripts/benchmark.py`` writes it) as a Markdown report."""
    summary, first = r["summary"], r["seeds"][0]
    lines = _header(r) + _retrieval(summary["methods"], n_seeds=len(r["seeds"]))
    if summary["detection"]:
        lines += _detection(summary["detection"], first)
    if summary["adapter_f1"]:
        lines += _adapter_f1(summary["adapter_f1"])
    if any(seed.get("rerank_choice") for seed in r["seeds"]):
        lines += _rerank_choice([seed for seed in r["seeds"] if seed.get("rerank_choice")])
    if first.get("hitl"):
        lines += _hitl(first)
    if first.get("gradients"):
        lines += _gradients(first)
    lines.append("")
    return "\n".join(lines)
