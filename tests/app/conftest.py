"""Fixtures for the app tests: a tiny phase-2 run on ADI built by the core, not mocked data.

Once per session the tiny random BERT encodes a copy of ADI, the adapter is
trained and every candidate scored (``train_phase2``, a few seconds). Then
the copy's top-ranked document of the first query, and that query, are
rewritten to carry ``<script>`` and Markdown links: the run's numbers stay
real, and every page must show the hostile text inertly. Each test gets its
own ``RRRA_HOME`` holding a copy of the run and an empty annotation store.
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
HOSTILE_DOC = (
    "<script>window.__pwned = 1</script> Evil [click me](http://evil.example) **bold** <img src=x onerror=alert(1)>"
    # Issue 17: bare addresses, a Markdown image and an iframe must not become links or load anything either.
    " see http://evil.example/bare or www.evil.example ![img](http://evil.example/x.png)"
    " <iframe src=http://evil.example/frame></iframe>"
)
HOSTILE_QUERY = "Hostile query [phish](http://evil.example) <b>bold</b>"
RUN_ID = "adi-tiny"


@dataclass(frozen=True)
class TinyRun:
    run_dir: Path
    dataset_dir: Path
    first_query: str
    hostile_doc: str


def _rewrite_jsonl_gz(path: Path, key: str, match: str, text: str) -> None:
    rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    for row in rows:
        if row["_id"] == match:
            row[key] = text
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


@pytest.fixture(scope="session")
def tiny_run_session(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    import os

    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.data import dataset_folder, load_dataset
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    base = tmp_path_factory.mktemp("app_home")
    data_dir = base / "adi_copy"
    shutil.copytree(dataset_folder("adi"), data_dir)
    old_home = os.environ.get("RRRA_HOME")
    os.environ["RRRA_HOME"] = str(base)
    try:
        enc = EncoderConfig(
            model=str(tiny_model_dir_session), query_max_length=16, doc_max_length=32, encode_batch_size=32
        )
        p2 = Phase2Config(
            dataset=str(data_dir),
            train_split="test",
            labels=LabelConfig(top_k=30, fp_rank_range=(30, 60)),
            fit=AdapterFitConfig(epochs=2, batch_size=64),
        )
        run = create_run("phase2", phase2_config_dict(enc, p2), run_id=RUN_ID)
        train_phase2(run, enc, p2)
    finally:
        if old_home is None:
            os.environ.pop("RRRA_HOME", None)
        else:
            os.environ["RRRA_HOME"] = old_home
    first_query = next(iter(load_dataset(str(data_dir), "test").qrels))
    preds = pd.read_parquet(run.file("predictions.parquet"))
    top = preds[(preds["query_id"] == first_query)].sort_values("rank")["doc_id"].iloc[0]
    _rewrite_jsonl_gz(data_dir / "corpus.jsonl.gz", "text", str(top), HOSTILE_DOC)
    _rewrite_jsonl_gz(data_dir / "queries.jsonl.gz", "text", first_query, HOSTILE_QUERY)
    return TinyRun(run_dir=run.path, dataset_dir=data_dir, first_query=first_query, hostile_doc=str(top))


@pytest.fixture()
def tiny_run(tiny_run_session: TinyRun, isolated_home: Path) -> TinyRun:
    """The tiny run copied into this test's own RRRA_HOME (empty annotation store)."""
    dst = isolated_home / "runs" / RUN_ID
    shutil.copytree(tiny_run_session.run_dir, dst)
    return TinyRun(
        run_dir=dst,
        dataset_dir=tiny_run_session.dataset_dir,
        first_query=tiny_run_session.first_query,
        hostile_doc=tiny_run_session.hostile_doc,
    )


@pytest.fixture()
def store(isolated_home: Path):
    """A session factory on this test's annotation store (the one the app writes)."""
    import db

    return db.session_factory(db.init_db())


@pytest.fixture(scope="session")
def tiny_runs_session(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory):
    """Phase 1, 2 and two phase-3 samplers on ADI with the tiny model (built once per session)."""
    from tests.core.analysis.test_comparison import build_tiny_runs

    return build_tiny_runs(tmp_path_factory, tiny_model_dir_session)


@pytest.fixture()
def runs(tiny_runs_session, isolated_home: Path) -> Path:
    """The tiny analysis runs copied into this test's own RRRA_HOME; returns its runs folder."""
    from tests.core.analysis.test_comparison import copy_runs

    return copy_runs(tiny_runs_session, isolated_home)


def wait_for_job(job_id: str, on_tick=None, stall_s: float = 600.0, every_s: float = 2.0):  # noqa: ANN001, ANN201
    """Wait until background job ``job_id`` ends; returns its final state.

    Waits on progress, not on a deadline tuned to an idle machine: it fails
    only when neither the job's log nor any file under the runs folder has
    changed for ``stall_s`` seconds. ``on_tick()`` runs between polls (a test
    re-running its page while the job works).
    """
    import time

    from rrra_core.runtime import jobs
    from rrra_core.runtime.paths import runs_dir

    def last_change() -> float:
        files = [jobs.jobs_dir() / job_id, runs_dir()]
        stamps = [p.stat().st_mtime for root in files if root.exists() for p in root.rglob("*") if p.is_file()]
        return max(stamps, default=0.0)

    seen, since = last_change(), time.monotonic()
    while (state := jobs.job_state(job_id)) is not None and state.active:
        if on_tick is not None:
            on_tick()
        time.sleep(every_s)
        now = last_change()
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since > stall_s:
            raise AssertionError(f"job {job_id} made no progress for {stall_s:.0f} s:\n{jobs.log_tail(job_id, 40)}")
    return state
