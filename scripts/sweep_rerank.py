"""Sweep the rerank strength lambda_RR (and the adapter signal) over a benchmark's trained runs.

Reranking needs no training, so this reuses the phase-1 encoder with its phase-2
adapter ("reranking only") and the RRRA phase-3 encoder with its jointly trained
adapter ("resampling + reranking") from each seed of a benchmark result file.

Example:
    python scripts/sweep_rerank.py results/parts/rrra_cranfield_s*.json --out results/rrra_cranfield_rerank_sweep
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="benchmark result JSON files (one or more seeds)")
    p.add_argument("--lambdas", default="0,0.25,0.5,1,2,4", help="comma-separated lambda_RR values")
    p.add_argument("--signals", default="p_rel,qa", help="adapter signals: p_rel and/or qa")
    p.add_argument("--out", required=True, help="results file stem")
    return p


def _phase2_full(seed: dict, phase1_id: str) -> str:
    """The full adapter's phase-2 run: keyed benchmarks name it; older files keep it beside phase 1."""
    return (seed["runs"].get("phase2") or {}).get("full") or phase1_id.replace("-phase1", "-phase2-full")


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from rrra_core.adapter import adapter_rerank_signal, load_adapter
    from rrra_core.data import load_dataset
    from rrra_core.retrieval.dense import retrieve
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
    from rrra_core.retrieval.evaluation import evaluate
    from rrra_core.retrieval.rerank import rerank_run
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.errors import DataError
    from rrra_core.runtime.runs import open_run, write_json_atomic

    args = build_parser().parse_args(argv)
    setup_logging()
    lambdas = [float(x) for x in args.lambdas.split(",") if x.strip()]
    signals = [x.strip() for x in args.signals.split(",") if x.strip()]
    rows: dict[tuple[str, str, float], list[dict[str, float]]] = {}
    for path in args.results:
        try:
            res = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(path, f"cannot read result file ({err})") from None
        cfg = res["config"]
        test = load_dataset(cfg["dataset"], cfg["test_split"])
        for seed in res["seeds"]:
            p1 = open_run(seed["runs"]["phase1"])
            pairs = [
                (
                    "phase 1 + phase-2 adapter",
                    p1.path,
                    p1.path.parent / _phase2_full(seed, p1.id) / "adapter",
                )
            ]
            if seed["runs"].get("rrra"):
                r3 = open_run(seed["runs"]["rrra"])
                pairs.append(("RRRA phase 3 + joint adapter", r3.path, r3.file("adapter")))
            for name, model, adapter_dir in pairs:
                enc_cfg = EncoderConfig(
                    model=str(model), query_max_length=cfg["query_max_length"], doc_max_length=cfg["doc_max_length"]
                )
                encoder = BiEncoder.from_pretrained(str(model)).eval()
                r = retrieve(encoder, test.corpus, test.queries, enc_cfg, k=100, progress=False)
                adapter, _ = load_adapter(adapter_dir)
                for signal in signals:
                    sig = adapter_rerank_signal(
                        adapter, r.run, r.query_ids, r.query_vectors, r.corpus.ids, r.corpus.vectors, signal
                    )
                    for lam in lambdas:
                        rows.setdefault((name, signal, lam), []).append(
                            evaluate(test.qrels, rerank_run(r.run, sig, lam))
                        )
    table = []
    for (name, signal, lam), ms in rows.items():
        agg = {
            k: (float(np.mean([m[k] for m in ms])), float(np.std([m[k] for m in ms], ddof=1)) if len(ms) > 1 else 0.0)
            for k in ("nDCG@10", "R@1", "R@10", "R@100")
        }
        table.append(
            {
                "model": name,
                "signal": signal,
                "lambda_rr": lam,
                "seeds": len(ms),
                **{k: {"mean": v[0], "std": v[1]} for k, v in agg.items()},
            }
        )
    raw = argv if argv is not None else sys.argv[1:]
    out = {"command": "python scripts/sweep_rerank.py " + shlex.join(raw), "rows": table}
    stem = Path(args.out)
    write_json_atomic(stem.with_suffix(".json"), out)
    lines = [
        "# Rerank sweep: lambda_RR and adapter signal",
        "",
        f"Command: `{out['command']}`",
        "",
        "| model | signal | lambda_RR | seeds | nDCG@10 | R@1 | R@10 | R@100 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in table:
        lines.append(
            f"| {t['model']} | {t['signal']} | {t['lambda_rr']:g} | {t['seeds']} | "
            + " | ".join(f"{t[k]['mean']:.4f} ± {t[k]['std']:.4f}" for k in ("nDCG@10", "R@1", "R@10", "R@100"))
            + " |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
