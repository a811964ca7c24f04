"""The app's reads at a training set's size (issue 27): first view, query switches, judgments, the refit.

For each size a synthetic run (:mod:`rrra_core.speed.scale_run`) is made, its
store built (:func:`~rrra_core.analysis.run_reader.build_store`, what phase 2 does
after scoring) and its queue features planted (random values in the layout the
refit reads: the lexical build needs a real corpus, so its time is not measured
here), with the queue's arms computed from them as the first refit after the
features would (:func:`~rrra_core.review.refit.build_arm_cache`; timed as
``arms_s``). Then each step runs in a fresh Python process, so its time is cold for the
process and its memory peak (``VmHWM``) is that process's own:

- ``after``: the functions the pages call now. First view: open the store, count
  the suspects, the top 15 excluding 1,000 judged pairs, the 1,000 decided
  pairs' probabilities (the Overview's run reads). Switch: one query's
  candidates with the rerank and verdict columns (the Hard negatives page).
  Judgment: judge the item on screen, then the queue's counts and next item
  (the Review queue page), the adapter order and the learnt order after a
  refit. Disagreements: one page's 50 listed pairs' rows (``pair_rows``).
  Map sample: the scored queries and the rows of the global map's 100 sampled
  queries (``query_rows``, what the map job reads). Refit:
  :func:`~rrra_core.review.refit.refit_run` on 1,000 verdicts. Pool overlap: a
  retrained run's shared pairs with its base (the Overview's note; once per
  process), here the run against itself, every pair shared: the worst case.
- ``before``: the whole-frame path the pages took before: ``read_predictions``,
  a query by a full scan, the review queue's frame ordered, a judgment's
  filters over every row.

Not the browser: Streamlit's rendering, the dataset load and the store's
counts of judgments (``results/store_scale.md``) come on top, the same at every size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SIZES", "prepare", "measure_after", "measure_before", "measure_overlap", "measure_size", "peak_rss_gb"]

SIZES = (100_000, 1_000_000, 10_000_000)
PER_QUERY = 100
N_SWITCH = 40
N_JUDGE = 40
N_VERDICTS = 1000
N_DISAGREEMENTS = 50  # the Disagreements page lists this many pairs
N_MAP_QUERIES = 100  # the global embedding map's sampled queries (ProjectionConfig.global_queries)


def peak_rss_gb() -> float:
    """This process's peak resident memory (``VmHWM``) in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) * 1024 / 1e9, 3)
    return float("nan")


def _p95(values: list[float]) -> float:
    return round(float(np.percentile(values, 95)), 4) if values else float("nan")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def prepare(root: Path, n_candidates: int) -> tuple[Path, dict[str, float]]:
    """The synthetic run of ``n_candidates`` under ``root`` with its store built and features planted."""
    import pandas as pd

    from rrra_core.analysis.run_reader import build_store, open_store
    from rrra_core.review.features import LexicalConfig
    from rrra_core.review.refit import FEATURES_FILE, build_arm_cache, features_key
    from rrra_core.speed.scale_run import write_synthetic_run

    run = root / f"scale-{n_candidates}"
    write_s, _ = _timed(lambda: write_synthetic_run(run, n_candidates // PER_QUERY, PER_QUERY))
    build_s, _ = _timed(lambda: build_store(run))
    store = open_store(run)
    rng = np.random.default_rng(1)
    n = store.n_negatives
    lex = pd.DataFrame(
        {
            "bm25": np.abs(5 + 2 * rng.standard_normal(n)),
            "q_coverage": rng.random(n),
            "q_idf_coverage": rng.random(n),
            "rare_idf": 3 + rng.random(n),
            "pos_sim": rng.random(n),
            "bm25_rank": rng.integers(0, PER_QUERY, n).astype(float),
        }
    )
    lex.assign(key=features_key(store, "synthetic", "train", LexicalConfig())).to_parquet(run / FEATURES_FILE)
    del lex
    arms_s, _ = _timed(lambda: build_arm_cache(run))
    return run, {"write_s": round(write_s, 2), "build_s": round(build_s, 2), "arms_s": round(arms_s, 2)}


def _sample_pairs(store: Any, n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    pos = rng.choice(store.n_negatives, size=min(n, store.n_negatives), replace=False)
    rows = store.negative_rows(np.sort(pos))
    return list(zip(rows["query_id"], rows["doc_id"], strict=True))


def _judgments(store: Any, live: Any, judged: set, threshold: float) -> list[float]:
    """Judge the item on screen ``N_JUDGE`` times, timing the page's reads that follow each judgment."""
    times = []
    for _ in range(N_JUDGE):
        t0 = time.perf_counter()
        n_pool = live.pool_count(store, threshold, None)
        gone_at = store.negative_positions(store.locate(judged).row)
        n_queue = n_pool - int(live.in_pool(store, gone_at, threshold, None).sum())
        first = live.first_open(store, threshold, None, gone_at)
        item = live.item(store, first)
        times.append(time.perf_counter() - t0)
        assert n_queue > 0
        judged.add((item["query_id"], item["doc_id"]))  # the judgment; the next loop is the rerun after it
    return times


def measure_after(run: Path) -> dict[str, Any]:
    """The pages' reads on the store, in this (fresh) process."""
    from rrra_core.analysis.candidates import predicted_class, with_rerank
    from rrra_core.analysis.run_reader import open_store
    from rrra_core.review.live import VERSION_COLUMN, live_queue
    from rrra_core.review.versions import read_latest, read_score_rows, review_dir

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    store = open_store(run)
    decided = dict.fromkeys(_sample_pairs(store, N_VERDICTS, 2), True)
    t_pairs = time.perf_counter() - t0  # choosing the benchmark's judged pairs is not the page's work
    t0 = time.perf_counter()
    store = open_store(run)
    n_suspects = store.count_suspects(0.5)
    top = store.top_suspects(15, exclude=decided)
    verdicts = store.negatives_at(decided)
    out["first_view_s"] = round(time.perf_counter() - t0, 4)
    assert len(top) == 15 and len(verdicts) == len(decided) and n_suspects > 0
    del t_pairs
    rng = np.random.default_rng(3)
    switches = []
    for q in rng.choice(store.query_ids, N_SWITCH, replace=False):
        dt, cands = _timed(lambda q=q: with_rerank(store.candidates(q), 1.0).assign(v=lambda c: predicted_class(c)))
        assert len(cands) == PER_QUERY
        switches.append(dt)
    out["switch_p95_s"] = _p95(switches)
    out["switch_median_s"] = round(float(np.median(switches)), 4)
    out["queue_open_s"], live = _timed(lambda: live_queue(store, "adapter"))
    out["judgment_p95_s"] = _p95(_judgments(store, live, set(decided), 0.0))
    version = read_latest(review_dir(run))
    if version is not None:
        dt, learnt = _timed(lambda: live_queue(store, "learnt", read_score_rows(version, (VERSION_COLUMN["learnt"],))))
        out["learnt_queue_open_s"] = round(dt, 3)
        out["learnt_judgment_p95_s"] = _p95(_judgments(store, learnt, set(decided), 0.0))
    out["queue_open_s"] = round(out["queue_open_s"], 3)
    pages = []
    for seed in range(5):
        listed = _sample_pairs(store, N_DISAGREEMENTS, 10 + seed)
        dt, rows = _timed(lambda listed=listed: store.pair_rows(listed))
        assert len(rows) == len(listed)
        pages.append(dt)
    out["disagreements_p95_s"] = _p95(pages)
    dt, scored = _timed(store.scored_queries)
    sampled = list(np.random.default_rng(5).choice(scored, N_MAP_QUERIES, replace=False))
    dt_rows, rows = _timed(lambda: store.query_rows(sampled))
    assert len(rows) == N_MAP_QUERIES * PER_QUERY
    out["map_sample_s"] = round(dt + dt_rows, 4)
    out["app_rss_gb"] = peak_rss_gb()
    return out


def measure_overlap(run: Path) -> dict[str, Any]:
    """The Overview note's pool overlap (once per process and pair of runs): the run against itself."""
    from rrra_core.analysis.pool_overlap import pool_overlap
    from rrra_core.analysis.run_reader import open_store

    store, base = open_store(run), open_store(run)
    dt, shared = _timed(lambda: pool_overlap(store, base))
    assert shared.n_shared == store.n_rows and shared.suspects_by_run(0.5) == store.count_suspects(0.5)
    return {"pool_overlap_s": round(dt, 2), "overlap_rss_gb": peak_rss_gb()}


def measure_refit(run: Path) -> dict[str, Any]:
    """One refit on ``N_VERDICTS`` verdicts (a third of them false negatives), in this (fresh) process."""
    from rrra_core.analysis.run_reader import open_store
    from rrra_core.review.refit import refit_run

    pairs = _sample_pairs(open_store(run), N_VERDICTS, 2)
    verdicts = {p: i % 3 == 0 for i, p in enumerate(pairs)}
    dt, result = _timed(lambda: refit_run(run, verdicts))
    return {
        "refit_s": round(dt, 2),
        "refit_features_s": round(result.seconds_features, 2),
        "refit_fit_s": round(result.seconds_fit, 2),
        "refit_rss_gb": peak_rss_gb(),
    }


def measure_before(run: Path) -> dict[str, Any]:
    """The whole-frame path the pages took before the store, in this (fresh) process."""
    from rrra_core.analysis.candidates import candidates_for, read_predictions, top_suspects
    from rrra_core.review import candidates_frame, queue_scores

    out: dict[str, Any] = {}
    dt, preds = _timed(lambda: read_predictions(run / "predictions.parquet"))
    out["read_predictions_s"] = round(dt, 2)
    out["read_rss_gb"] = peak_rss_gb()
    qs = list(np.random.default_rng(3).choice(preds["query_id"].unique(), 10, replace=False))
    out["switch_p95_s"] = _p95([_timed(lambda q=q: candidates_for(preds, q))[0] for q in qs])
    out["top_suspects_s"] = round(_timed(lambda: top_suspects(preds, 15))[0], 3)

    def order() -> Any:
        frame = candidates_frame(preds, {}).drop(columns=["positives"])
        frame["queue_score"], _ = queue_scores(frame, "adapter", None, seed=0)
        return frame.sort_values(["queue_score", "query_id", "rank", "doc_id"], ascending=[False, True, True, True])

    dt, frame = _timed(order)
    out["queue_open_s"] = round(dt, 2)
    split = set(frame["query_id"].unique())
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        pool = frame[(frame["p_fn_given_neg"] >= 0.0) & frame["query_id"].isin(split)]
        gone: set = set()
        queue = pool[[pair not in gone for pair in zip(pool["query_id"], pool["doc_id"], strict=True)]]
        queue.iloc[0].to_dict()
        times.append(time.perf_counter() - t0)
    out["judgment_p95_s"] = _p95(times)
    out["rss_gb"] = peak_rss_gb()
    return out


def _child(step: str, run: Path) -> dict[str, Any]:
    """Run one step in a fresh interpreter (cold caches of the process, its own memory peak)."""
    code = (
        "import json, sys; from pathlib import Path; from rrra_core.speed import scale_app as m; "
        f"print(json.dumps(getattr(m, {step!r})(Path({str(run)!r}))))"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_size(root: Path, n_candidates: int, before: bool = True) -> dict[str, Any]:
    """Every measure at one size: prepare, then the refit, the pages' reads after it and (optionally) before."""
    run, made = prepare(root, n_candidates)
    out: dict[str, Any] = {"candidates": n_candidates, "queries": n_candidates // PER_QUERY, **made}
    out["refit"] = _child("measure_refit", run)
    out["after"] = _child("measure_after", run)
    out["overlap"] = _child("measure_overlap", run)
    if before:
        out["before"] = _child("measure_before", run)
    return out
