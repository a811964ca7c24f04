"""scripts/refit_queue.py on a real tiny run and store: versions appear with the verdicts they learnt from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd

import db
from rrra_core.review.versions import read_latest, read_scores, read_verdicts, refit_lock, review_dir
from rrra_core.runtime.paths import REPO_ROOT
from tests.app import conftest as app_fixtures
from tests.app.conftest import RUN_ID, TinyRun

SCRIPT = str(REPO_ROOT / "scripts" / "refit_queue.py")

# The app tests' tiny phase-2 run (built once per session), copied into each test's own RRRA_HOME.
tiny_run_session = app_fixtures.tiny_run_session
tiny_run = app_fixtures.tiny_run


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # RRRA_HOME: the test's own (isolated_home)
    return subprocess.run(
        [sys.executable, SCRIPT, "--run", RUN_ID, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO_ROOT,
    )


def _judge(run: TinyRun, n_fn: int, n_rej: int, skip: int = 0) -> dict[tuple[str, str], bool]:
    """Judge labelled negatives of the run as ana: ``n_fn`` relevant, then ``n_rej`` not relevant."""
    preds = pd.read_parquet(run.run_dir / "predictions.parquet")
    negs = preds[preds["label"] == 0].sort_values(["query_id", "rank"]).iloc[skip : skip + n_fn + n_rej]
    verdicts = {(str(q), str(d)): i < n_fn for i, (q, d) in enumerate(zip(negs["query_id"], negs["doc_id"]))}
    with db.session_factory(db.init_db())() as s:
        name = db.ensure_dataset(s, str(run.dataset_dir)).name
        for (q, d), fn in verdicts.items():
            db.save_judgment(s, name, q, d, "relevant" if fn else "not_relevant", "ana")
    return verdicts


def _used(version) -> dict[tuple[str, str], bool]:  # noqa: ANN001
    v = read_verdicts(version)
    return {(q, d): bool(x) for q, d, x in zip(v["query_id"], v["doc_id"], v["verdict"], strict=True)}


def test_refits_write_numbered_versions_with_the_verdicts_they_used(tiny_run: TinyRun) -> None:
    folder = review_dir(tiny_run.run_dir)
    cold = _run()
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert "note: no verdicts yet: prior order" in cold.stderr
    v1 = read_latest(folder)
    assert v1 is not None and v1.name == "v0001" and json.loads(cold.stdout)["version"] == 1
    assert v1.model["n_verdicts"] == 0 and not v1.model["fitted"] and v1.model["feature_cache"] == "built"
    assert (tiny_run.run_dir / "review_features.parquet").is_file()  # the slow first step, done by the job
    n_negatives = v1.model["n_candidates"]
    assert len(read_scores(v1)) == n_negatives

    verdicts = _judge(tiny_run, n_fn=3, n_rej=7)
    out = _run()
    assert out.returncode == 0, out.stderr[-2000:]
    v2 = read_latest(folder)
    assert v2.name == "v0002" and json.loads((folder / "latest.json").read_text())["path"] == "v0002"
    m = v2.model
    assert (m["n_verdicts"], m["n_false_negatives"], m["fitted"]) == (10, 3, True)
    assert m["feature_cache"] == "read" and m["policy"] == "majority" and m["n_judged"] == 10
    assert m["seconds"] >= m["seconds_fit"] > 0 and "coefficients" in m and "intercept" in m["coefficients"]
    assert _used(v2) == verdicts
    scored = set(zip(read_scores(v2)["query_id"], read_scores(v2)["doc_id"], strict=True))
    assert len(scored) == n_negatives - 10 and scored.isdisjoint(verdicts)  # only the remaining candidates
    assert (folder / "v0001" / "model.json").is_file()  # the older version stays, unchanged
    assert read_latest(folder).number == 2

    # A feature cache and the latest version's scores cut short (a full disk): the cache is built again and the
    # refit writes the next version as usual.
    for damaged in (tiny_run.run_dir / "review_features.parquet", folder / "v0002" / "scores.parquet"):
        damaged.write_bytes(damaged.read_bytes()[:100])
    again = _run()
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    v3 = read_latest(folder)
    assert v3.name == "v0003" and v3.model["feature_cache"] == "built" and _used(v3) == verdicts
    assert len(pd.read_parquet(tiny_run.run_dir / "review_features.parquet")) == n_negatives


def test_one_class_only_still_writes_a_version_that_says_so(tiny_run: TinyRun) -> None:
    _judge(tiny_run, n_fn=0, n_rej=4)
    out = _run("--annotator", "ana")
    assert out.returncode == 0, out.stderr[-2000:]
    v = read_latest(review_dir(tiny_run.run_dir))
    assert not v.model["fitted"] and "only rejections so far (4)" in v.model["note"]
    assert v.model["policy"] == "annotator:ana" and len(_used(v)) == 4
    assert "note: only rejections" in out.stderr


def test_bad_input_is_one_line_and_leaves_the_current_version(tiny_run: TinyRun) -> None:
    folder = review_dir(tiny_run.run_dir)
    assert _run().returncode == 0
    _judge(tiny_run, n_fn=1, n_rej=1)

    with refit_lock(folder):  # another refit of the run is running
        busy = _run()
    assert busy.returncode == 2 and busy.stderr.strip().splitlines()[-1].startswith("error: another refit")

    nobody = _run("--annotator", "bob")
    assert nobody.returncode == 2 and "annotator 'bob' has no judgments" in nobody.stderr

    (tiny_run.run_dir / "predictions.parquet").unlink()
    missing = _run()
    assert missing.returncode == 2 and "no predictions file" in missing.stderr
    assert "Traceback" not in busy.stderr + nobody.stderr + missing.stderr

    latest = read_latest(folder)
    assert latest.number == 1 and latest.model["n_verdicts"] == 0  # nothing half-written, nothing replaced
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("v")) == ["v0001"]


def test_help_names_the_flags() -> None:
    out = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0 and all(f in out.stdout for f in ("--run", "--db", "--annotator", "--wait"))
