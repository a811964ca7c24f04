"""The annotation store's command line: export, import, stats, agreement, upgrade.

``scripts/annotations.py`` is the driver; every subcommand takes the database
from ``--db URL``, else ``$RRRA_DB_URL``, else the default SQLite file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from rrra_core.runtime.errors import ConfigError

__all__ = ["build_parser", "main"]

EXPORT_FORMATS = ("beir", "trec", "negatives", "tevatron", "flag", "label-studio", "argilla", "judgments")
IMPORT_FORMATS = ("qrels", "judgments", "label-studio")


class _Parser(argparse.ArgumentParser):
    # A usage mistake is a user error like any other: one "error:" line, exit 2.
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    from db.exports import DEFAULT_TASK_LIMIT, SUSPECT_THRESHOLD, TASK_SELECTIONS

    p = _Parser(
        prog="annotations.py",
        description="Export, import and inspect human relabels (the annotation store).",
        epilog="The database is --db URL, else $RRRA_DB_URL, else <home>/.rrra/annotations.sqlite. "
        "URLs: a file path, sqlite:///path, or postgresql://user@host/db (through psycopg).",
    )
    p.add_argument("--db", help="database URL or SQLite file (default: $RRRA_DB_URL or the project's SQLite file)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser("export", help="write corrected qrels, training files, review tasks or all judgments")
    e.add_argument(
        "--dataset", required=True, help="embedded dataset (squad, scifact, cranfield, adi) or a BEIR folder"
    )
    e.add_argument("--split", default="train", help="qrels split whose labels are corrected (default: train)")
    e.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="what to write")
    e.add_argument("--out", required=True, help="output file")
    e.add_argument("--policy", default="majority", help="merge policy: majority, any_relevant or annotator:<name>")
    e.add_argument("--qrels", help="base qrels file (BEIR TSV or TREC) instead of the split's")
    e.add_argument(
        "--hard-negatives", help="Tevatron file of mined negatives to add after the confirmed ones (tevatron/flag)"
    )
    e.add_argument("--max-negatives", type=int, help="cap on negatives per example (tevatron/flag)")
    e.add_argument(
        "--predictions",
        help="a run's predictions (.parquet, .jsonl or .csv): the candidates (label-studio/argilla); a run folder's "
        "predictions.parquet is read through its store (<run>/reader/, built once), never whole",
    )
    e.add_argument("--run-id", help="model version to show with the predictions (label-studio/argilla)")
    e.add_argument(
        "--order", default="p_fn", choices=("p_fn", "uncertainty", "random"), help="task order (label-studio/argilla)"
    )
    e.add_argument(
        "--select",
        default="queue",
        choices=TASK_SELECTIONS,
        help="which candidates become tasks (label-studio/argilla): queue, the review queue's next --limit; "
        f"suspects, labelled negatives at P(FN|neg) >= --threshold (default {SUSPECT_THRESHOLD}); judged, the pairs "
        "people judged (--predictions optional)",
    )
    e.add_argument(
        "--threshold", type=float, help="only candidates with P(FN|neg) at least this (label-studio/argilla)"
    )
    e.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_TASK_LIMIT,
        help=f"at most this many tasks (label-studio/argilla; default {DEFAULT_TASK_LIMIT}, 0 for all)",
    )
    e.add_argument("--include-judged", action="store_true", help="also pairs someone already judged (queue/suspects)")

    i = sub.add_parser("import", help="read qrels, exported judgments or a Label Studio export as judgments")
    i.add_argument("file", help="the file to import")
    i.add_argument("--dataset", required=True, help="dataset the judgments belong to (name or BEIR folder)")
    i.add_argument("--format", required=True, choices=IMPORT_FORMATS, help="what the file is")
    i.add_argument("--annotator", help="whose judgments these are (required for qrels; overrides Label Studio users)")
    i.add_argument("--note", default="", help="note stored with each imported qrels judgment")

    s = sub.add_parser("stats", help="judgments per annotator and label")
    s.add_argument("--dataset", help="only this dataset (default: all)")
    s.add_argument("--json", action="store_true", help="print JSON")

    a = sub.add_parser("agreement", help="Cohen's kappa (two annotators) or Krippendorff's alpha (more)")
    a.add_argument("--dataset", required=True, help="dataset name or BEIR folder")
    a.add_argument("--annotators", help="comma-separated names (default: everyone who judged the dataset)")
    a.add_argument("--exclude-unsure", action="store_true", help="leave 'unsure' verdicts out")
    a.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("upgrade", help="create or migrate the database schema to the newest revision")
    return p


def _read_candidates(path: str) -> list[dict[str, Any]]:
    from rrra_core.data import iter_jsonl
    from rrra_core.runtime.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file not found")
    if p.suffix == ".parquet" or p.suffix == ".csv":
        import pandas as pd

        try:
            frame = (
                pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p, dtype={"query_id": str, "doc_id": str})
            )
        except Exception as err:  # pandas/pyarrow raise many types for a bad file
            raise DataError(p, f"cannot read predictions: {err}") from None
        return frame.to_dict("records")
    return [obj for _, obj in iter_jsonl(p)]


def _run_store(path: str) -> Any:
    """The run's store when ``path`` is a run folder's ``predictions.parquet`` (built on first use), else ``None``.

    ``None`` also for a store that cannot give the whole frame's choice exactly
    (:func:`db.store_tasks.store_can_select`): those candidates are read whole.
    A missing or damaged file is the store's one-line ``DataError``.
    """
    from db.store_tasks import store_can_select
    from rrra_core.analysis.run_reader import open_store, store_is_current

    p = Path(path)
    run = p.parent
    if p.name != "predictions.parquet" or not ((run / "config.json").is_file() or store_is_current(run)):
        return None  # not a run folder: no store is written beside someone's file
    store = open_store(run)
    return store if store_can_select(store) else None


def _export(session: Any, args: argparse.Namespace) -> str:
    import db
    from rrra_core.data import load_dataset

    if args.max_negatives is not None and args.max_negatives < 0:
        raise ConfigError("--max-negatives must be 0 or more")
    name = db.ensure_dataset(session, args.dataset).name
    if args.format == "judgments":
        n = db.export_judgments(session, args.out, name)
        return f"wrote {n} judgments to {args.out}"
    data = load_dataset(args.dataset, args.split)
    if args.format in ("label-studio", "argilla"):
        from db.exports import TaskChoice, select_tasks, write_tasks

        if not args.predictions and args.select != "judged":
            raise ConfigError(f"--format {args.format} needs --predictions (a run's predictions.parquet)")
        choice = TaskChoice(args.select, args.order, args.threshold, args.limit, args.include_judged)
        store = _run_store(args.predictions) if args.predictions else None
        if store is not None:
            from db.store_tasks import file_column_names, select_store_tasks

            names = file_column_names(args.predictions)
            rows, selected = select_store_tasks(session, name, store, choice, names=names)
        else:
            candidates = _read_candidates(args.predictions) if args.predictions else None
            rows, selected = select_tasks(session, name, candidates, choice)
        total = min(selected, choice.cap) if choice.cap is not None else selected
        n = write_tasks(
            args.out,
            args.format,
            name,
            data.corpus,
            data.all_queries,
            rows,
            run_id=args.run_id,
            progress=lambda done: print(f"  {done:,} of {total:,} tasks written", file=sys.stderr, flush=True),
        )
        return f"wrote {args.format} tasks to {args.out}: {choice.describe(n, selected)}"
    base = db.read_qrels_file(args.qrels) if args.qrels else data.qrels
    merged = db.merge_labels(session, name, base, args.policy)
    qrels, confirmed = merged.qrels, merged.confirmed_negatives
    n_pos = sum(len(d) for d in qrels.values())
    n_neg = sum(len(d) for d in confirmed.values())
    if args.format == "beir":
        db.write_beir_qrels(args.out, qrels)
    elif args.format == "trec":
        db.write_trec_qrels(args.out, qrels)
    elif args.format == "negatives":
        db.write_confirmed_negatives(args.out, confirmed)
        return f"wrote {n_neg} confirmed negatives of {len(confirmed)} queries to {args.out}"
    else:
        hard = db.read_hard_negatives(args.hard_negatives) if args.hard_negatives else None
        examples = db.training_examples(
            data.corpus, data.all_queries, qrels, confirmed, hard, max_negatives=args.max_negatives
        )
        db.write_training_file(args.out, examples, args.format)
        return f"wrote {len(examples)} training examples ({n_pos} positives, {n_neg} confirmed negatives) to {args.out}"
    return (
        f"wrote {n_pos} positives of {len(qrels)} queries ({args.policy}; {n_neg} confirmed negatives kept out) "
        f"to {args.out}"
    )


def _import(session: Any, args: argparse.Namespace) -> str:
    import db

    name = db.ensure_dataset(session, args.dataset).name
    if args.format == "qrels":
        if not args.annotator:
            raise ConfigError("importing qrels needs --annotator (whose judgments they are)")
        summary = db.import_qrels(session, name, args.file, args.annotator, note=args.note)
    elif args.format == "judgments":
        summary = db.import_judgments(session, args.file, dataset=name)
    else:
        summary = db.import_label_studio(session, name, args.file, annotator=args.annotator)
    return f"imported {summary.rows} judgments into {name!r} ({summary.changed} new or changed)"


def _stats(session: Any, args: argparse.Namespace) -> str:
    import db

    names = (
        [db.ensure_dataset(session, args.dataset).name] if args.dataset else [d.name for d in db.list_datasets(session)]
    )
    out = {
        name: {"annotators": db.annotator_counts(session, name), "events": db.count_events(session, name)}
        for name in names
    }
    if args.json:
        return json.dumps(out, indent=2)
    lines = []
    for name, info in out.items():
        lines.append(f"{name}: {info['events']} events")
        for who, c in info["annotators"].items():
            lines.append(
                f"  {who:<24} {c['total']:>6} judged: {c['relevant']} relevant, "
                f"{c['not_relevant']} not relevant, {c['unsure']} unsure"
            )
        if not info["annotators"]:
            lines.append("  no judgments")
    return "\n".join(lines) if lines else "no datasets in the annotation store"


def _agreement(session: Any, args: argparse.Namespace) -> str:
    import db

    name = db.ensure_dataset(session, args.dataset).name
    who = [w.strip() for w in args.annotators.split(",") if w.strip()] if args.annotators else None
    res = db.agreement(session, name, annotators=who, include_unsure=not args.exclude_unsure)
    if args.json:
        return json.dumps(
            {
                "dataset": name,
                "method": res.method,
                "value": res.value,
                "annotators": list(res.annotators),
                "items": res.n_items,
                "observed_agreement": res.observed_agreement,
                "pairwise_kappa": [
                    {"a": a, "b": b, "kappa": k, "items": res.pairwise_items[(a, b)]}
                    for (a, b), k in res.pairwise_kappa.items()
                ],
            },
            indent=2,
        )
    fmt = lambda v: "undefined" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"{name}: {len(res.annotators)} annotators, {res.n_items} pairs judged by two or more"]
    lines.append(
        f"  {res.method.replace('_', ' ')}: {fmt(res.value)}   observed agreement: {fmt(res.observed_agreement)}"
    )
    for (a, b), k in res.pairwise_kappa.items():
        lines.append(f"  kappa {a} / {b}: {fmt(k)} on {res.pairwise_items[(a, b)]} pairs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand against the store; user errors raise ``UserError`` (see ``run_main``)."""
    import db
    from rrra_core.runtime.cli import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    engine = db.init_db(args.db)  # refuses a damaged store in one line, before any subcommand reads or writes
    try:
        if args.command == "upgrade":
            url = db.display_url(engine.url.render_as_string(hide_password=False))
            print(f"{url}: schema at revision {db.current_revision(engine)} (newest)")
            return 0
        with db.session_factory(engine)() as session:
            handler = {"export": _export, "import": _import, "stats": _stats, "agreement": _agreement}[args.command]
            print(handler(session, args))
    finally:
        engine.dispose()
    return 0
