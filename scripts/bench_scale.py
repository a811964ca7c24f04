"""The app's reads at 100k, 1M and 10M scored candidates (issue 27): writes results/scale.{json,md}.

Makes a synthetic run per size (phase 2's columns, 100 candidates per query)
under --root, builds its store as phase 2 does, and times in fresh processes
what the pages read now (first view, query switch, judgment to next item, a
Disagreements page's pairs, the embedding map's sample, memory; the Overview
note's pool overlap) and the refit on 1,000 verdicts, beside the whole-frame path the pages
took before (rrra_core/speed/scale_app.py says what each step covers). The
targets: first view ≤ 10 s, switch p95 ≤ 1 s, judgment p95 ≤ 0.5 s, app RSS
≤ 2 GB, refit ≤ 15 s.

Examples:
    python scripts/bench_scale.py --root /tmp/rrra_scale
    python scripts/bench_scale.py --sizes 200000 --no-before --out /tmp/scale   # the code path, quickly
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"first_view_s": 10.0, "switch_p95_s": 1.0, "judgment_p95_s": 0.5, "app_rss_gb": 2.0, "refit_s": 15.0}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000], help="candidates")
    p.add_argument("--root", help="where the synthetic runs go (default: a temp folder, removed after)")
    p.add_argument("--no-before", action="store_true", help="skip the whole-frame path (the slowest part)")
    p.add_argument("--out", default=str(REPO / "results" / "scale"), help="output path without extension")
    return p


def summary(sizes: list[dict]) -> dict:
    """The largest size's headline figures, each against its target."""
    last = sizes[-1]
    after, refit = last.get("after", {}), last.get("refit", {})
    values = {k: after.get(k) for k in ("first_view_s", "switch_p95_s", "judgment_p95_s", "app_rss_gb")}
    values["refit_s"] = refit.get("refit_s")
    return {
        "candidates": last["candidates"],
        **values,
        "met": {k: v is not None and v <= TARGETS[k] for k, v in values.items()},
    }


def _markdown(out: dict) -> str:
    def cell(d: dict, k: str) -> str:
        v = d.get(k)
        return "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    rows_after = "\n".join(
        f"| {s['candidates']:,} | {s.get('build_s', '—')} | {cell(s['after'], 'first_view_s')} | "
        f"{cell(s['after'], 'switch_p95_s')} | {cell(s['after'], 'queue_open_s')} | "
        f"{cell(s['after'], 'judgment_p95_s')} | {cell(s['after'], 'learnt_judgment_p95_s')} | "
        f"{cell(s['after'], 'disagreements_p95_s')} | {cell(s['after'], 'map_sample_s')} | "
        f"{cell(s['after'], 'app_rss_gb')} | {cell(s.get('overlap', {}), 'pool_overlap_s')} | "
        f"{cell(s['refit'], 'refit_s')} | {cell(s['refit'], 'refit_rss_gb')} |"
        for s in out["sizes"]
    )
    rows_before = "\n".join(
        f"| {s['candidates']:,} | {cell(s['before'], 'read_predictions_s')} | {cell(s['before'], 'switch_p95_s')} | "
        f"{cell(s['before'], 'top_suspects_s')} | {cell(s['before'], 'queue_open_s')} | "
        f"{cell(s['before'], 'judgment_p95_s')} | {cell(s['before'], 'rss_gb')} |"
        for s in out["sizes"]
        if "before" in s
    )
    summ = out["summary"]
    counts = [f"{s['candidates']:,}" for s in out["sizes"]]
    sizes = ", ".join(counts[:-1]) + " and " + counts[-1] if len(counts) > 1 else counts[0]
    met = ", ".join(
        f"{k} {summ[k]} ({'met' if ok else 'MISSED'}, target {TARGETS[k]})" for k, ok in summ["met"].items()
    )
    text = (
        f"<!-- command: {out['command']} -->\n# The app at {sizes} scored candidates\n\n"
        f"Command: `{out['command']}`  \nStarted {out['started']}; machine: {out['cpu_count']} CPUs, load average "
        f"before {out['load_before']}, after {out['load_after']}.\n\n"
        f"**Summary at {summ['candidates']:,}**: {met}.\n\n"
        "## Now: the pages read the run's store (seconds; GB)\n\n"
        "| candidates | store build (once) | first view | switch p95 | queue open | judgment p95 (adapter) | "
        "judgment p95 (learnt) | disagreements page p95 | map sample | app RSS peak | pool overlap (once) | "
        "refit (1,000 verdicts) | refit RSS peak |\n"
        f"|---|---|---|---|---|---|---|---|---|---|---|---|---|\n{rows_after}\n"
    )
    if rows_before:
        text += (
            "\n## Before: the whole run as a frame (the same steps)\n\n"
            "| candidates | read_predictions | switch p95 (full scan) | top suspects | queue open | judgment p95 | "
            f"RSS peak |\n|---|---|---|---|---|---|---|\n{rows_before}\n"
        )
    return text + (
        "\nEach step runs in a fresh process on a synthetic run (rrra_core/speed/scale_run.py: phase 2's columns, "
        "100 candidates per query). What is timed is the functions the pages call, not a browser: Streamlit's "
        "rendering and the dataset load come on top, the same at every size. First view: open the store, count "
        "the suspects, the top 15 excluding 1,000 judged pairs, the 1,000 decided pairs' probabilities. Switch: "
        "one query's candidates with the rerank and verdict columns. Judgment: the queue's counts and next item "
        "after judging the one on screen. Queue open: ordering the queue, once per order and version in the app "
        "process. Disagreements page: the rows of the 50 pairs one page lists. Map sample: the scored queries and "
        "the rows of the global map's 100 sampled queries (what the map job reads). Pool overlap: a retrained "
        "run's shared pairs with its base for the Overview's note, once per process and pair of runs, here the "
        "run against itself (every pair shared). The refit's lexical features are planted (random values in the "
        "stored layout): building them needs a real corpus and is a one-time step not timed here. The store build "
        "is the one pass over the whole run, done once per predictions file.\n"
    )


def main(argv: list[str] | None = None) -> int:
    from rrra_core.speed.scale_app import measure_size

    args = build_parser().parse_args(argv)
    command = "python scripts/bench_scale.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="rrra-scale-"))
    started = dt.datetime.now().isoformat(timespec="seconds")
    load_before = [round(x, 2) for x in os.getloadavg()]
    sizes = []
    try:
        for n in args.sizes:
            print(f"measuring {n:,} candidates", file=sys.stderr, flush=True)
            sizes.append(measure_size(root, n, before=not args.no_before))
            shutil.rmtree(root / f"scale-{n}", ignore_errors=True)
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)
    out = {
        "command": command,
        "started": started,
        "cpu_count": os.cpu_count(),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "targets": TARGETS,
        "summary": summary(sizes),
        "sizes": sizes,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(_markdown(out), encoding="utf-8")
    print(json.dumps(out["summary"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
