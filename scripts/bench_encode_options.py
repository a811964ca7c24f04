"""Encoding options on this CPU: speed against sentence-transformers fp32, quality against our fp32.

Times sentence-transformers, ours in fp32 (with and without the length sort),
bf16 autocast, torch int8 dynamic quantisation per channel, ONNX Runtime fp32
and int8, and two single-thread processes, taking turns over chunks of a fixed
SciFact sample; then the SciFact test nDCG@10 of each option whose vectors stay
close to fp32. Writes ``<out>/encode_options.json`` and ``.md``, headed by this
command, the machine and the load; ``summary.encode_speedup_vs_st`` is the best
qualifying option's speed (read by ``scripts/bench_scale.py``).

The ONNX options need ``pip install onnx==1.23.2 onnxruntime==1.31.1`` (not
project requirements); without them they are listed as not run.

Examples:
    python scripts/bench_encode_options.py
    python scripts/bench_encode_options.py --options st-fp32 fp32 bf16 int8-keep-ffn-out --no-quality
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.speed.encode_options import OPTIONS, EncodeOptionsBench

    d = EncodeOptionsBench()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=d.model, help="encoder folder or 'minilm'")
    p.add_argument("--dataset", default=d.dataset, help="embedded dataset: the passage sample and the nDCG@10")
    p.add_argument("--docs", type=int, default=d.docs, help="passages timed (a fixed random sample of the corpus)")
    p.add_argument("--max-length", type=int, default=d.max_length, help="max word pieces per passage when timing")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size for every option")
    p.add_argument("--chunk", type=int, default=d.chunk, help="passages per round (every option encodes each)")
    p.add_argument("--passes", type=int, default=d.passes, help="passes over the sample")
    p.add_argument("--threads", type=int, default=d.threads, help="total threads for every option")
    p.add_argument("--options", nargs="+", default=list(d.options), help=f"options to run (from {', '.join(OPTIONS)})")
    p.add_argument("--min-cosine", type=float, default=d.min_cosine, help="mean cosine to fp32 an option needs")
    p.add_argument("--max-ndcg-drop", type=float, default=d.max_ndcg_drop, help="largest nDCG@10 change allowed")
    p.add_argument("--no-quality", action="store_true", help="skip the nDCG@10 part (minutes per option on a CPU)")
    p.add_argument("--quality-doc-length", type=int, default=d.quality_doc_length, help="doc max length for nDCG")
    p.add_argument("--work-dir", default="", help="folder for the ONNX files (default: a temporary folder)")
    p.add_argument("--out", default=None, help="folder for the results files (default: results/)")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: recompute the summary and rewrite the Markdown from the JSON in --out "
        "(and encode_options.notes.md beside it)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.speed import attach_notes, measure_part, read_result, write_result
    from rrra_core.speed.encode_options import (
        EncodeOptionsBench,
        bench_encode_options,
        render_encode_options,
        summarize_options,
    )

    args = build_parser().parse_args(argv)
    setup_logging()
    out_dir = Path(args.out) if args.out else REPO_ROOT / "results"
    stem = out_dir / "encode_options"
    if args.render_only:
        result = read_result(stem)
        result["summary"] = summarize_options(result["options"])
        attach_notes(result, out_dir / "encode_options.notes.md")
        write_result(stem, result, render_encode_options(result))
        return 0
    if "st-fp32" not in args.options or "fp32" not in args.options:
        raise SystemExit("--options must include st-fp32 (the speed baseline) and fp32 (the quality reference)")
    cfg = EncodeOptionsBench(
        model=args.model,
        dataset=args.dataset,
        docs=args.docs,
        max_length=args.max_length,
        batch_size=args.batch_size,
        chunk=args.chunk,
        passes=args.passes,
        threads=args.threads,
        options=tuple(args.options),
        min_cosine=args.min_cosine,
        max_ndcg_drop=args.max_ndcg_drop,
        quality=not args.no_quality,
        quality_doc_length=args.quality_doc_length,
        work_dir=args.work_dir,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    args_text = sys.argv[1:] if argv is None else argv
    command = "python scripts/bench_encode_options.py" + (" " + shlex.join(args_text) if args_text else "")
    result = measure_part("encode_options", command, "cpu", lambda: bench_encode_options(cfg))
    attach_notes(result, out_dir / "encode_options.notes.md")
    write_result(stem, result, render_encode_options(result))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
