"""Measure the per-run rerank choice (issue 29): phase-2 runs choose their rerank on dev; test is read once.

Writes ``<out>.json`` and ``<out>.md`` (default ``results/rerank_choice``) headed by the command, after
every seed, so a killed bench keeps what it measured; finished phase-2 runs (``runs/rerank-choice-*``)
are reused.

Example:
    RRRA_HOME=/tmp/rrra python scripts/bench_rerank_choice.py --datasets adi,cranfield --seeds 0,1,2
    python scripts/bench_rerank_choice.py --write-adi-halves /tmp/adi-halves   # ADI's halves for benchmark.py
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    import argparse

    from rrra_core.runtime.config import add_config_arguments, config_from_args
    from rrra_core.runtime.paths import REPO_ROOT
    from rrra_core.runtime.runs import write_json_atomic
    from rrra_core.workflows.rerank_choice_bench import (
        RerankChoiceBenchConfig,
        render_markdown,
        run_rerank_choice_bench,
        write_adi_halves,
    )

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, RerankChoiceBenchConfig)
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "rerank_choice"), help="results file stem")
    p.add_argument(
        "--write-adi-halves",
        metavar="DIR",
        help="instead of measuring, write ADI with this bench's training and test halves as a BEIR folder",
    )
    args = p.parse_args(argv)
    if args.write_adi_halves:
        print(write_adi_halves(args.write_adi_halves))
        return 0
    cfg = config_from_args(RerankChoiceBenchConfig, args)
    command = "python scripts/bench_rerank_choice.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)

    def save(result: dict) -> None:
        write_json_atomic(out.with_suffix(".json"), {"command": command, **result})
        out.with_suffix(".md").write_text(render_markdown(result, command), encoding="utf-8")

    save(run_rerank_choice_bench(cfg, save=save))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
