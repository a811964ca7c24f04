"""Refit a run's learnt review queue on the annotation store's verdicts: a new version in runs/<id>/review/.

Reads the verdicts the store decides for the run's dataset (every annotator
by majority, or one person's with --annotator), fits the review-queue learner
on those that fall on the run's labelled negatives, scores the rest and
writes runs/<id>/review/v000N/ (model.json, scores.parquet, verdicts.parquet);
latest.json moves to it last. The first refit of a run also builds the
lexical feature cache (review_features.parquet), the slow step. The Review
queue page starts this driver in the background after every N judgments.

No verdicts yet, or verdicts of one class only: a version is still written,
holding the learner's fallback order (the prior, plus the per-query boost),
and its note says so. A missing run or predictions file, an unknown annotator
or another refit of the same run still running: a one-line error, and the
current version stays the latest.

Examples:
    python scripts/refit_queue.py --run demo-squad
    python scripts/refit_queue.py --run demo-squad --annotator alice --wait 60
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run id (under the runs folder) or run folder path")
    p.add_argument(
        "--db", help="annotation store URL or SQLite path (default: $RRRA_DB_URL or <home>/.rrra/annotations.sqlite)"
    )
    p.add_argument("--annotator", help="learn from this person's verdicts only (default: everyone's, by majority)")
    p.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for another refit of the run (default: exit at once)"
    )
    p.add_argument("--keep", type=int, default=20, help="versions kept in the run folder (default: 20)")
    return p


def store_verdicts(dataset: str, policy: str, db_url: str | None) -> tuple[dict, set]:
    """``(verdicts, judged pairs)``: the store's decided verdicts under ``policy``, and every judged pair.

    The page counts judged pairs the same way, to know when N new judgments call for a refit.
    """
    import db

    sessions = db.session_factory(db.init_db(db_url))
    with sessions() as s:
        name = db.ensure_dataset(s, dataset).name
        verdicts = db.decide(s, name, policy)
        _, annotator = db.parse_policy(policy)
        judged = db.judged_pairs(s, name, annotator=annotator)
    return verdicts, judged


def main(argv: list[str] | None = None) -> int:
    from rrra_core.review.refit import RefitConfig, refit_run
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.runtime.run_config import read_run_config
    from rrra_core.runtime.runs import open_run

    args = build_parser().parse_args(argv)
    if args.keep < 1:
        raise ConfigError("--keep must be at least 1")
    setup_logging()
    run = open_run(args.run)
    dataset = read_run_config(run).dataset
    if not dataset:
        raise ConfigError(f"run {run.id!r}: its config.json names no dataset")
    policy = f"annotator:{args.annotator}" if args.annotator else "majority"
    verdicts, judged = store_verdicts(dataset, policy, args.db)
    # Relevant = the labelled negative is a false negative: the learner's positive class.
    result = refit_run(
        run.path,
        verdicts,
        RefitConfig(keep=args.keep),
        wait=args.wait,
        extra={"run_id": run.id, "dataset": dataset, "policy": policy, "n_judged": len(judged)},
    )
    model = result.version.model
    if not model["fitted"]:
        print(f"note: {model['note']}", file=sys.stderr)
    summary = {k: model[k] for k in ("version", "n_verdicts", "n_false_negatives", "fitted", "note", "seconds")}
    print(json.dumps({"run": run.id, "path": str(result.version.path), **summary}, indent=2))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
