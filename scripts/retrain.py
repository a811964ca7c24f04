"""Retrain with the annotation store's corrections: the adapter (and optionally the encoder) on corrected labels.

This driver is where the store meets the core: it reads the verdicts the
store decides under --policy on the base run's training queries, turns them
into label corrections and hands those to the retrain job. The app's Retrain
page launches it as a background job; it works the same from a terminal.
Progress and the outcome go to the new run folders (named by --run-id);
the base run's folder is only read. Running it again with the same --run-id
resumes what a killed job left, with the verdicts it started with (finished
phases are kept, phase 3 continues from its checkpoint); any other run's id,
the base run's included, is refused.

Examples:
    python scripts/retrain.py --base-run demo-squad --run-id demo-squad-r1
    python scripts/retrain.py --base-run demo-squad --run-id demo-squad-r2 --preset full --policy annotator:alice
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rrra_core.data import LabelCorrections
    from rrra_core.workflows.retrain import RetrainConfig, RetrainScope

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

log = logging.getLogger("retrain")


def build_parser() -> argparse.ArgumentParser:
    from rrra_core.runtime.config import add_config_arguments
    from rrra_core.workflows.retrain import PRESETS, RetrainConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", help="name of the new run (and its job); default: <base>-retrain-<time>")
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="fill phases, epochs and steps from a preset (explicit flags win)"
    )
    p.add_argument(
        "--db", help="annotation store URL or SQLite path (default: $RRRA_DB_URL or <home>/.rrra/annotations.sqlite)"
    )
    add_config_arguments(p, RetrainConfig)
    return p


def load_corrections(cfg: RetrainConfig, run_id: str, scope: RetrainScope, db_url: str | None) -> LabelCorrections:
    """The label corrections the job trains on: the store's verdicts under ``cfg.policy``, or a resumed job's own.

    Verdicts apply to the base run's training queries only, so a judgment on
    a test query never reaches training.
    """
    import db
    from rrra_core.data import apply_verdicts
    from rrra_core.runtime.errors import ConfigError
    from rrra_core.workflows.retrain import VERDICTS_FILE, recorded_verdicts

    recorded = recorded_verdicts(run_id)
    if recorded is not None:
        policy, verdicts = recorded
        if policy != cfg.policy:
            raise ConfigError(
                f"run {run_id!r} was started with policy {policy!r}; resume it with --policy {policy} "
                "or choose a new --run-id"
            )
        log.info("resuming %s with the %d verdicts it recorded (%s)", run_id, len(verdicts), VERDICTS_FILE)
    else:
        sessions = db.session_factory(db.init_db(db_url))
        with sessions() as s:
            name = db.ensure_dataset(s, scope.dataset).name
            verdicts = db.decide(s, name, cfg.policy)
    return apply_verdicts(scope.data.qrels, verdicts, query_ids=scope.query_ids)


def first_queue_version(
    cfg: RetrainConfig, run_id: str, scope: RetrainScope, corrections: LabelCorrections, db_url: str | None
) -> int:
    """The new run's first learnt-queue version, fitted on the verdicts the round used; returns its number.

    Judgments are keyed by dataset, query and document, so the store's
    verdicts carry over to the new run; the ones now merged into its labels
    (found relevant) are labelled positives there and leave the queue.
    """
    import db
    from rrra_core.review.refit import RefitConfig, refit_run
    from rrra_core.runtime.runs import open_run
    from rrra_core.workflows.retrain import final_run_id

    final = open_run(final_run_id(run_id, cfg))
    _, annotator = db.parse_policy(cfg.policy)
    sessions = db.session_factory(db.init_db(db_url))
    with sessions() as s:
        n_judged = len(db.judged_pairs(s, db.ensure_dataset(s, scope.dataset).name, annotator=annotator))
    extra = {"run_id": final.id, "dataset": scope.dataset, "policy": cfg.policy, "n_judged": n_judged}
    result = refit_run(final.path, corrections.verdicts, RefitConfig(), wait=60.0, extra=extra)
    return int(result.version.model["version"])


def main(argv: list[str] | None = None) -> int:
    import db
    from rrra_core.runtime.cli import setup_logging
    from rrra_core.runtime.config import config_from_args, config_to_dict
    from rrra_core.workflows.retrain import PRESETS, RetrainConfig, check_run_id, retrain, retrain_scope

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset:
        # A preset fills what the command line left unset (unset flags parse as None).
        for key, value in PRESETS[args.preset].items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    setup_logging()
    cfg = config_from_args(RetrainConfig, args)
    db.parse_policy(cfg.policy)  # the store's vocabulary: an unknown policy is a one-line error here
    run_id = args.run_id or f"{cfg.base_run}-retrain-{time.strftime('%Y%m%d-%H%M%S')}"

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # the job runner records the job as cancelled

    signal.signal(signal.SIGTERM, on_term)
    scope = retrain_scope(cfg)
    check_run_id(cfg, run_id)  # a taken id (the base's, another round's) is refused before the store is read
    corrections = load_corrections(cfg, run_id, scope, args.db)
    summary = retrain(cfg, run_id, corrections, scope=scope)
    if cfg.remine or not cfg.joint:
        summary["queue_version"] = first_queue_version(cfg, run_id, scope, corrections, args.db)
    print(json.dumps({"run_id": run_id, "config": config_to_dict(cfg), **summary}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
