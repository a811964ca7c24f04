"""The annotation store at a real training set's size: fill it with synthetic judgments, then time what pages read.

A team labelling a 100k-query training set reaches a million judgments. This
module writes such a store quickly (bulk inserts, not the per-save path with
its events, so the fill takes seconds rather than hours) and times each read
the app and the exports make on it: the Overview's counts, agreement, the
Disagreements list and every export. ``scripts/bench_store.py`` is its driver.

The synthetic votes are drawn so that every read has real work: each pair is
judged by two or three of five annotators, about one pair in ten is a
disagreement, and some of those are adjudicated.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session, sessionmaker

from .models import Adjudication, Judgment, StoredDataset, StoredDoc, StoredQuery

__all__ = ["ScaleConfig", "fill_store", "time_reads"]

LABELS = ("relevant", "not_relevant", "unsure")


@dataclass(frozen=True)
class ScaleConfig:
    """How big a synthetic store to write."""

    judgments: int = 1_000_000
    annotators: int = 5
    docs_per_query: int = 10
    seed: int = 0
    dataset: str = "scale"
    batch: int = 50_000

    @property
    def pairs(self) -> int:
        return max(1, round(self.judgments / 2.5))  # two or three votes a pair: 2.5 on average

    @property
    def queries(self) -> int:
        return max(1, self.pairs // self.docs_per_query)


def _chunks(rows: list[dict[str, Any]], size: int) -> Any:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _votes(cfg: ScaleConfig) -> list[dict[str, Any]]:
    """One row per judgment: pairs (q, d) judged by 2-3 annotators, mostly agreeing."""
    rng = np.random.default_rng(cfg.seed)
    now = datetime.now(UTC)
    names = [f"annotator-{i}" for i in range(cfg.annotators)]
    rows: list[dict[str, Any]] = []
    for p in itertools.count():  # pairs until the judgments are written (2.5 a pair on average)
        q, d = f"q{p // cfg.docs_per_query}", f"d{p}"
        truth = "relevant" if rng.random() < 0.3 else "not_relevant"
        who = rng.choice(cfg.annotators, size=2 + int(rng.random() < 0.5), replace=False)
        for i in who:
            label = truth if rng.random() > 0.05 else LABELS[int(rng.integers(3))]
            rows.append(
                {
                    "query_id": q,
                    "doc_id": d,
                    "annotator": names[int(i)],
                    "label": label,
                    "note": "",
                    "p_fn": float(rng.random()),
                    "rank": int(rng.integers(1, 101)),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        if len(rows) >= cfg.judgments:
            break
    return rows[: cfg.judgments]


def fill_store(engine: Engine, cfg: ScaleConfig, progress: Callable[[str], None] = print) -> int:
    """Write ``cfg.judgments`` judgments of a fresh dataset ``cfg.dataset``; returns the dataset's id."""
    rows = _votes(cfg)
    with Session(engine) as s, s.begin():
        ds = StoredDataset(name=cfg.dataset, source="synthetic (db/scale.py)")
        s.add(ds)
        s.flush()
        ds_id = ds.id
        queries = sorted({r["query_id"] for r in rows})
        docs = sorted({r["doc_id"] for r in rows})
        ds.n_queries, ds.n_docs = len(queries), len(docs)
        for chunk in _chunks([{"dataset_id": ds_id, "query_id": q} for q in queries], cfg.batch):
            s.execute(insert(StoredQuery), chunk)
        for chunk in _chunks([{"dataset_id": ds_id, "doc_id": d} for d in docs], cfg.batch):
            s.execute(insert(StoredDoc), chunk)
        for i, chunk in enumerate(_chunks(rows, cfg.batch)):
            s.execute(insert(Judgment), [{**r, "dataset_id": ds_id} for r in chunk])
            progress(f"judgments {min((i + 1) * cfg.batch, len(rows)):,}/{len(rows):,}")
        _adjudicate_some(s, ds_id, rows)
    if engine.dialect.name == "postgresql":
        # What autovacuum does to a store filled over weeks: statistics, and the visibility map that lets
        # the covering indexes answer without visiting rows. A bulk fill read at once would not have them yet.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) judgments, adjudications"))
    return ds_id


def _adjudicate_some(s: Session, ds_id: int, rows: list[dict[str, Any]]) -> None:
    # Every other disagreement is settled, so the open list and the merge both meet adjudications.
    votes: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        votes.setdefault((r["query_id"], r["doc_id"]), set()).add(r["label"])
    split = [pair for pair, labels in votes.items() if len(labels) > 1][::2]
    now = datetime.now(UTC)
    adj = [
        {
            "dataset_id": ds_id,
            "query_id": q,
            "doc_id": d,
            "verdict": "relevant",
            "adjudicator": "lead",
            "note": "",
            "created_at": now,
            "updated_at": now,
        }
        for q, d in split
    ]
    for chunk in _chunks(adj, 50_000):
        s.execute(insert(Adjudication), chunk)


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    # Wall time, and this process's CPU time: on a shared, loaded machine the second is what the code costs.
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def time_reads(engine: Engine, cfg: ScaleConfig, out_dir: Path) -> dict[str, dict[str, Any]]:
    """Seconds (and a size) for each read the app and the exports make on ``cfg.dataset``."""
    import db

    from .overview import overview_counts

    factory = sessionmaker(engine)
    name = cfg.dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    scope = [f"q{i}" for i in range(cfg.queries)]  # every query; no qrels of its own, so positives are verdicts
    steps: dict[str, Callable[[Session], Any]] = {
        "Overview counts": lambda s: overview_counts(s, name, "annotator-0").judged_pairs,
        "annotator counts (stats)": lambda s: len(db.annotator_counts(s, name)),
        "agreement": lambda s: db.agreement(s, name).n_items,
        "Disagreements list (open)": lambda s: len(db.disagreements(s, name, open_only=True)),
        "Disagreements page (first 50 open, with counts)": lambda s: _disagreements_page(s, name),
        "export judgments": lambda s: db.export_judgments(s, out_dir / "judgments.jsonl", name),
        "export beir qrels (majority)": lambda s: _qrels_export(s, name, scope, out_dir / "qrels.tsv", "beir"),
        "export trec qrels (majority)": lambda s: _qrels_export(s, name, scope, out_dir / "qrels.trec", "trec"),
        "export confirmed negatives": lambda s: _qrels_export(s, name, scope, out_dir / "negatives.tsv", "negatives"),
    }
    results: dict[str, dict[str, Any]] = {}
    for step, fn in steps.items():
        with factory() as s:
            seconds, cpu, size = _timed(lambda fn=fn, s=s: fn(s))
        results[step] = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "rows": size}
    return results


def _disagreements_page(s: Session, name: str) -> int:
    # What the Disagreements page reads: the totals it shows, and the one page of pairs it lists.
    import db

    _, open_ = db.count_disagreements(s, name)
    db.disagreements(s, name, open_only=True, limit=50)
    return open_


def _qrels_export(s: Session, name: str, scope: list[str], path: Path, kind: str) -> int:
    import db

    merged = db.merge_labels(s, name, {}, "majority", query_ids=scope)
    if kind == "beir":
        db.write_beir_qrels(path, merged.qrels)
        return sum(len(d) for d in merged.qrels.values())
    if kind == "trec":
        db.write_trec_qrels(path, merged.qrels)
        return sum(len(d) for d in merged.qrels.values())
    db.write_confirmed_negatives(path, merged.confirmed_negatives)
    return sum(len(d) for d in merged.confirmed_negatives.values())
