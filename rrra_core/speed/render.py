"""Markdown for the speed results, rendered from a result's JSON alone.

Nothing here measures or imports torch: ``bench_speed.py --render-only``
rewrites every ``speed_<part>.md`` from its ``.json`` (after a hand edit of the
notes, say) without running a benchmark. Each renderer reads the keys its
benchmark module writes, and the shared header reads the keys
:func:`rrra_core.speed.results.measure_part` adds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["header", "mib", "fmt", "render", "render_encode", "render_latency", "render_index", "render_train"]

MIB = 1024**2


def mib(x: float | None) -> str:
    """Bytes as whole MiB with thousands separators; "n/a" for a memory that could not be read."""
    return "n/a" if x is None else f"{x / MIB:,.0f} MiB"


def fmt(x: float | None, digits: int = 2) -> str:
    """A number with thousands separators and fixed decimals; "n/a" for a missing one."""
    return "n/a" if x is None else f"{x:,.{digits}f}"


def header(title: str, r: dict[str, Any]) -> list[str]:
    """Title, command, machine and load lines that head every part's Markdown."""
    m = r["machine"]
    peak = m["peak_gflops_estimate"]
    return [
        f"# {title}",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Machine: {m['cpu']} ({m['cpu_vendor']} family {m['cpu_family_model'][0]} "
        f"model {m['cpu_family_model'][1]}), "
        f"{m['cpu_count']} cores, {m['torch_threads']} torch threads, device {m['device']}"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f". Nominal peak {peak['fp32']} GFLOP/s fp32"
        + (f", {peak['bf16']} bf16" if peak.get("bf16") else "")
        + f" ({peak['basis']}, {peak['ghz']} GHz).",
        "",
        f"Load average (1, 5, 15 min) before: {r['load']['before']}, after: {r['load']['after']}. "
        "The machine is shared: a load above the core count means the timings are slower than on an idle machine, "
        f"and the same-process ratios are the robust numbers. Started {r['started']}, "
        f"wall time {r['wall_seconds']:.0f} s.",
        "",
    ]


def _finish(lines: list[str], r: dict[str, Any]) -> str:
    """The hand-written notes (if any) appended, as one string ending in a newline."""
    return "\n".join([*lines, *r.get("notes_md", [])]) + "\n"


# ------------------------------------------------------------------- encode
def render_encode(r: dict[str, Any]) -> str:
    """Encoding throughput: one table per max length, then the targets."""
    s = r["settings"]
    gemm = r["gemm_ceiling_gflops"]
    lines = header("Speed: encoding throughput against sentence-transformers", r)
    lines += [
        f"Texts: {s['dataset']}. Batch size {s['batch_size']} on both sides. "
        "Sides alternate in rotating order over chunks of "
        f"{s['chunk']} texts (each side encodes every chunk once), so load drift hits all sides alike. "
        "Ours sorts each call's texts "
        "by token length and pads per batch; sentence-transformers sorts by character length and pads per batch.",
        "",
        f"Our fast side: precision `{s['precision_arg']}` -> {s['fast_precision']} "
        f"(native bf16 on this device: {s['native_bf16']}).",
        f"GEMM ceiling measured here (torch 1024^3, best of 5): before {gemm['before']}, "
        f"after {gemm['after']} GFLOP/s. "
        f"FLOPs: {s['flops_model']}.",
        "",
    ]
    for e in r["lengths"]:
        lines += _encode_length(e)
    lines += _encode_targets(r)
    return _finish(lines, r)


def _encode_length(e: dict[str, Any]) -> list[str]:
    lines = [
        f"## Max length {e['max_length']}",
        "",
        f"Load average after this length: {e['load_after']}. {e['docs']} passages, {e['tokens']:,} tokens "
        f"(mean {e['mean_tokens']}, {100 * e['truncated_share']:.0f}% truncated), "
        f"{e['gflop']:,} GFLOP of useful work. Share of computed tokens that are real (not padding): "
        f"ours {100 * e['padding_efficiency']:.0f}% "
        f"(sorted by token count), sentence-transformers {100 * e['padding_efficiency_st']:.0f}% "
        "(sorted by characters).",
        "",
        "| side | seconds | docs/s | tokens/s | GFLOP/s | % nominal peak | % GEMM ceiling "
        "| throughput vs sentence-transformers | per-chunk ratio p50 [min, max] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for side, v in e["sides"].items():
        ratio = e["ratios"].get(side)
        rtxt = "1 (baseline)" if ratio is None else f"**{ratio['throughput_vs_st']:.2f}x**"
        chunk = None if ratio is None else ratio["per_chunk"]
        ptxt = "" if chunk is None else f"{chunk['p50']:.2f} [{chunk['min']:.2f}, {chunk['max']:.2f}]"
        lines.append(
            f"| {side} | {v['seconds']} | {v['docs_per_s']} | {v['tokens_per_s']:,} | {v['gflops']} "
            f"| {fmt(v['pct_of_nominal_peak'], 1)} | {v['pct_of_gemm_ceiling']} | {rtxt} | {ptxt} |"
        )
    lines.append("")
    c = e["cosine_ours_fp32_vs_st"]
    lines.append(f"Cosine, ours fp32 vs sentence-transformers: min {c['min']:.6f}, mean {c['mean']:.6f}.")
    for k, v in e.items():
        if k.startswith("cosine_ours_") and k != "cosine_ours_fp32_vs_st":
            lines.append(
                f"Cosine, ours {k.split('_')[2]} vs ours fp32: min {v['min']:.6f}, mean {v['mean']:.6f} "
                f"({'within' if v['within_1e-2'] else 'OUTSIDE'} 1e-2)."
            )
    lines.append("")
    return lines


def _encode_targets(r: dict[str, Any]) -> list[str]:
    t = r["targets"]
    worst = t["worst_ratio_vs_st"]
    verdict = "met" if t["ratio_at_least_1"] else f"MISSED by {1 - worst:.2f}"
    per_len = []
    for e in r["lengths"]:
        x = e["ratios"][t["side"]]["throughput_vs_st"]
        per_len.append(
            f"max length {e['max_length']}: {x:.2f}x"
            + (" (stretch met)" if x >= 1.5 else f" (stretch missed by {1.5 - x:.2f})")
        )
    return [
        "## Targets",
        "",
        f"- Throughput ratio vs sentence-transformers >= 1.0 (stretch 1.5), side `{t['side']}`, "
        f"worst over lengths **{worst:.2f}x** -> {verdict}; " + "; ".join(per_len) + ".",
        f"- bf16 results within 1e-2 cosine of fp32: {'yes' if t['cosine_within_1e-2'] else 'NO'}.",
        "",
    ]


# ------------------------------------------------------------------ latency
def render_latency(r: dict[str, Any]) -> str:
    """Query latency: one section per torch thread setting, then the factored rerank's agreement."""
    s = r["settings"]
    lines = header("Speed: query latency (encode, search, adapter rerank)", r)
    lines += [
        "Settings: " + "; ".join(f"{k}: {v}" for k, v in s.items()) + ".",
        "",
        "Each query runs alone: encode it, search the index for the top k, rerank those k with the adapter; "
        "stages are timed per query. "
        "Every query runs once per torch thread setting, settings alternating in rotating order.",
        "",
    ]
    for name, v in r["by_threads"].items():
        lines += _latency_setting(name, v, s)
    ag = r["rerank_agreement"]
    lines += [
        "## The factored serving path against the plain forward",
        "",
        "`Searcher.rerank` uses `rrra_core.adapter.factored`: the adapter's first layer and the head's query blocks "
        "are formed once per query "
        "(W1 z = (Wa + Wc) q + (Wc - Wa + Wb diag(q)) c), so each document costs about 2 d h multiply-adds "
        "instead of 4 d h. "
        "`rerank_plain` is the plain forward (`predict_pairs`), timed in the same loop, alternating which runs first. "
        f"Agreement over {ag['queries']} query runs: max |P(rel) difference| {ag['max_abs_p_rel_diff']:.2e}, "
        f"identical reranked order in {ag['same_order']}.",
        "",
    ]
    return _finish(lines, r)


def _latency_setting(name: str, v: dict[str, Any], s: dict[str, Any]) -> list[str]:
    ce, t = v["cross_encoder"], v["targets"]
    share, added = v["rerank_share_of_total"], v["rerank_added_to_encode_plus_search"]
    plain = v["plain_rerank_added_to_encode_plus_search"]
    lines = [
        f"## {name}",
        "",
        "| stage | p50 ms | p95 ms | mean ms | max ms |",
        "|---|---|---|---|---|",
        *[f"| {k} | {x['p50']} | {x['p95']} | {x['mean']} | {x['max']} |" for k, x in v["latency_ms"].items()],
        "",
        f"Rerank share of the total, per query: p50 {100 * share['p50']:.1f}%, p95 {100 * share['p95']:.1f}%. "
        f"Rerank time added on top of encode + search: p50 {100 * added['p50']:.1f}%, "
        f"p95 {100 * added['p95']:.1f}%. "
        f"The plain forward instead (`rerank_plain` row): p50 {100 * plain['p50']:.1f}%, "
        f"p95 {100 * plain['p95']:.1f}%.",
        "",
    ]
    if ce["queries"]:
        a, c = ce["adapter_ms_same_queries"], ce["cross_encoder_ms"]
        lines += [
            f"Adapter vs cross-encoder on the same {s['k']} documents ({ce['queries']} queries, "
            "alternating which runs first; "
            f"the cross-encoder reads {s['cross_encoder_pair_tokens_per_query_mean']:,} tokens per query):",
            "",
            "| reranker | p50 ms | mean ms | max ms |",
            "|---|---|---|---|",
            f"| adapter | {a['p50']} | {a['mean']} | {a['max']} |",
            f"| cross-encoder | {c['p50']:,} | {c['mean']:,} | {c['max']:,} |",
            "",
        ]
    missed_by = f"MISSED by {100 * t['rerank_added_p50'] - 10:.1f} percentage points"
    lines += [
        f"Targets ({name}):",
        f"- adapter rerank adds <= 10% to the latency: p50 {100 * t['rerank_added_p50']:.1f}% -> "
        + ("met" if t["rerank_adds_at_most_10pct"] else missed_by)
        + f" (plain forward: {100 * t['plain_rerank_added_p50']:.1f}%);",
        "- adapter at least 500x cheaper than a cross-encoder: "
        f"median ratio {fmt(t['adapter_vs_cross_encoder'], 0)}x -> "
        + ("met" if t["adapter_500x_cheaper"] else "MISSED")
        + ".",
        "",
    ]
    return lines


# -------------------------------------------------------------------- index
def _break_even(sweep_row: dict[str, Any]) -> str:
    if "break_even_queries" not in sweep_row:
        return "-"
    n = sweep_row["break_even_queries"]
    return "never" if n is None else f"{n:,}"


def render_index(r: dict[str, Any]) -> str:
    """Index scale: one table row per index and search setting."""
    s, a = r["settings"], r["auto"]
    lines = header(f"Speed: index scale ({s['vectors']:,} vectors x {s['dim']})", r)
    lines += [
        f"Data: {s['synthetic']:,} synthetic vectors ({s['synthetic_data']}) + {s['demo_docs']:,} real documents "
        f"({s['demo_data']}); generated in {s['generate_seconds']} s.",
        f"Queries: {s['queries']}; recall@{s['k']} is against the exact (flat) top {s['k']} of the same index. "
        f"FAISS threads: {s['faiss_threads']}. "
        f"Single-query latency: {s['single_query_latency']}.",
        "",
        f'`kind="auto"` picks **{a["kind"]}** for {a["documents"]:,} documents '
        f"(exact below {a['flat_below']:,}, then {a['above_flat_limit']}; "
        f"the demo corpus alone gets {a['demo_corpus_alone']}). Its row below is the flat one.",
        "",
        "| index | params | build s | resident after build | peak extra during build | payload (estimate) "
        "| search | queries/s (batch) | single query p50 ms | recall@10 | synthetic | real "
        "| break-even queries vs flat |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["indexes"]:
        lines += _index_rows(row)
    lines += [
        "",
        "Memory is resident set size: growth after the build (with freed heap returned to the OS) "
        "and the peak above the starting RSS during the build (kernel high-water mark). "
        "The data matrix itself (the input) is resident before every build and not counted. "
        "Load average after each index: "
        + "; ".join(f"{row['kind']} {row['load_after']}" for row in r["indexes"])
        + ". "
        "Break-even: queries one build must answer before the approximate index's longer build "
        "is paid back by its faster batch search "
        "(`retrieve()` builds a fresh index per call, so for evaluation and mining the build is part of the cost).",
        "",
    ]
    return _finish(lines, r)


def _index_rows(row: dict[str, Any]) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
    built = [
        row["kind"],
        params,
        row["build_s"],
        mib(row["resident_after_build_bytes"]),
        mib(row["peak_extra_during_build_bytes"]),
        mib(row["payload_bytes_estimate"]),
    ]
    lines = []
    for i, sw in enumerate(row["sweep"]):
        first = " | ".join(str(x) if i == 0 else "" for x in built)
        lines.append(
            f"| {first} | {sw['search']} | {sw['queries_per_s_batch']:,} | {sw['single_query_ms']['p50']} | "
            f"{sw['recall@10']} | {sw['recall@10_synthetic']} | {fmt(sw['recall@10_real'], 4)} | "
            f"{_break_even(sw)} |"
        )
    return lines


# -------------------------------------------------------------------- train
def render_train(r: dict[str, Any]) -> str:
    """Training steps: per-variant timings and memory, the phase-3 / phase-1 ratios, the target."""
    gpu = any(v["gpu_peak_bytes"] for v in r["variants"].values())
    lines = header("Speed: training step throughput and peak memory (phases 1 and 3)", r)
    lines += [
        "Settings: " + "; ".join(f"{k}: {v}" for k, v in r["settings"].items()) + ".",
        "",
        "| variant | fastest step s | step p50 s | p95 s | mean s | steps | docs/step | s per doc (p50) "
        "| peak RSS | extra RSS |" + (" GPU peak |" if gpu else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if gpu else ""),
    ]
    for name, v in r["variants"].items():
        st = v["step_seconds"]
        gpu_cell = f" {mib(v['gpu_peak_bytes'])} |" if v["gpu_peak_bytes"] else ""
        lines.append(
            f"| {name} | {st['min']} | {st['p50']} | {st['p95']} | {st['mean']} | {st['n']} "
            f"| {v['docs_per_step_mean']} | {v['seconds_per_doc']} "
            f"| {mib(v['peak_rss_bytes'])} | {mib(v['extra_rss_bytes'])} |{gpu_cell}"
        )
    lines += [
        "",
        "Load average after each run: "
        + "; ".join(f"{name}: {v['load_after_each_run']}" for name, v in r["variants"].items())
        + ".",
        "",
        "Other processes only add time to a step, so the fastest step of each variant is the estimate "
        "they disturb least; "
        "the target is judged on the ratio of fastest steps, with medians and per-round medians beside it.",
        "",
        "| ratio (phase 3 / phase 1) | fastest step | median step | per-round medians | per document (fastest) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | **{v['fastest_step']}** | {v['median_step']} | {', '.join(str(x) for x in v['per_round_median'])} "
        f"| {v['per_document_fastest']} |"
        for k, v in r["ratios"].items()
    ]
    lines += _train_target(r)
    return _finish(lines, r)


def _train_target(r: dict[str, Any]) -> list[str]:
    t = r["targets"]
    hard = t["phase3_over_phase1_hard"]
    verdict = "met" if t["at_most_1_5"] else f"MISSED by {hard - 1.5:.2f} ({100 * (hard / 1.5 - 1):.0f}% over)"
    median = r["ratios"][list(r["ratios"])[1]]["median_step"]
    return [
        "",
        "## Target",
        "",
        f"- Phase 3 at most 1.5x phase 1 per step at the same batch: {hard}x against phase 1 "
        f"with one hard negative -> {verdict}"
        f" (ratio of fastest steps; of median steps: {median}x)"
        f"; {t['phase3_over_phase1_inbatch']}x against in-batch-only phase 1. "
        "Phase 3 with an extra random corpus negative per query (a third more documents): "
        f"{t['phase3_extra_random_over_phase1_hard']}x.",
        "",
    ]


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "encode": render_encode,
    "latency": render_latency,
    "index": render_index,
    "train": render_train,
}


def render(result: dict[str, Any]) -> str:
    """The Markdown for one part's result, chosen by its ``part`` key."""
    return RENDERERS[result["part"]](result)
