"""Queue versions in a run folder: the layout, the atomic latest pointer, numbering, pruning, the refit lock."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.review import queue_scores, synthetic_frame
from rrra_core.review.refit import RefitConfig, fit_version, refit_run
from rrra_core.review.versions import (
    LATEST_FILE,
    LOCK_FILE,
    MODEL_FILE,
    SCORES_FILE,
    VERDICTS_FILE,
    RefitBusy,
    list_versions,
    next_version,
    parse_version,
    prune_versions,
    read_latest,
    read_scores,
    read_verdicts,
    refit_lock,
    usable_latest,
    verdicts_hash,
    version_name,
    write_version,
)
from rrra_core.runtime.errors import DataError


def _scores(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"query_id": ["q1"] * n, "doc_id": [f"d{i}" for i in range(n)], "score": np.arange(n) * 1.0})


def _verdicts() -> pd.DataFrame:
    return pd.DataFrame({"query_id": ["q1"], "doc_id": ["d9"], "verdict": [True]})


def test_names_and_numbers() -> None:
    assert version_name(1) == "v0001" and version_name(12345) == "v12345"
    assert parse_version("v0003") == 3 and parse_version("v12345") == 12345
    for bad in ("v003", "v0000", "x0001", ".v0001.ab.tmp", "v0001x", "latest.json"):
        assert parse_version(bad) is None, bad
    for bad in (0, -1, True, 1.0):
        with pytest.raises(ValueError):
            version_name(bad)  # type: ignore[arg-type]


def test_layout_and_next_version(tmp_path: Path) -> None:
    root = tmp_path / "review"
    assert read_latest(root) is None and next_version(root) == 1 and list_versions(root) == []
    v1 = write_version(root, {"note": "first", "n_verdicts": 0}, _scores(), _verdicts().iloc[:0])
    v2 = write_version(root, {"note": "second", "n_verdicts": 1, "version": 99}, _scores(2), _verdicts())
    assert (v1.name, v2.name) == ("v0001", "v0002")
    assert sorted(p.name for p in root.iterdir()) == [LATEST_FILE, "v0001", "v0002"]
    assert sorted(p.name for p in (root / "v0002").iterdir()) == ["model.json", "scores.parquet", "verdicts.parquet"]
    model = json.loads((root / "v0002" / "model.json").read_text())
    assert model["version"] == 2 and model["path"] == "v0002" and model["note"] == "second"  # the number is ours
    assert json.loads((root / LATEST_FILE).read_text()) == {"version": 2, "path": "v0002"}
    latest = read_latest(root)
    assert latest is not None and latest.number == 2 and latest.n_verdicts == 1
    pd.testing.assert_frame_equal(read_scores(latest), _scores(2))
    assert read_verdicts(latest).to_dict("records") == [{"query_id": "q1", "doc_id": "d9", "verdict": True}]
    assert next_version(root) == 3


def test_a_half_written_version_is_never_the_latest_nor_counted(tmp_path: Path) -> None:
    root = tmp_path / "review"
    write_version(root, {}, _scores(), _verdicts())
    (root / ".v0002.dead.tmp").mkdir()  # a refit killed mid-write leaves this
    (root / "v0002").mkdir()  # and a folder without model.json is no version either
    assert list_versions(root) == [1] and read_latest(root).number == 1
    with pytest.raises(ValueError, match="lacks column"):
        write_version(root, {}, _scores().drop(columns="score"), _verdicts())
    assert read_latest(root).number == 1 and list_versions(root) == [1]


def test_a_failed_write_leaves_the_current_version_in_place(tmp_path: Path) -> None:
    root = tmp_path / "review"
    write_version(root, {"note": "good"}, _scores(), _verdicts())
    bad = _scores()
    bad["score"] = [object(), object(), object()]  # parquet cannot write these
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error type
        write_version(root, {"note": "bad"}, bad, _verdicts())
    latest = read_latest(root)
    assert latest.number == 1 and latest.model["note"] == "good"
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # the temporary folder is gone


def test_bad_pointers_are_one_line_errors(tmp_path: Path) -> None:
    root = tmp_path / "review"
    root.mkdir()
    (root / LATEST_FILE).write_text('{"version": 7, "path": "v0007"}')
    with pytest.raises(DataError, match="does not exist"):
        read_latest(root)
    (root / LATEST_FILE).write_text("not json")
    with pytest.raises(DataError, match="not a queue-version pointer"):
        read_latest(root)


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def test_a_damaged_version_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    v1 = write_version(tmp_path / "review", {"n_verdicts": 0}, _scores(), _verdicts())
    for name, read in ((SCORES_FILE, read_scores), (VERDICTS_FILE, read_verdicts)):
        _truncate(v1.path / name)
        with pytest.raises(DataError, match=f"{name}: damaged: not a readable parquet file .*refit") as err:
            read(v1)
        assert "\n" not in str(err.value)


def test_a_damaged_latest_version_gives_way_to_the_previous_one(tmp_path: Path) -> None:
    root = tmp_path / "review"
    assert usable_latest(root) == (None, [])
    for n in range(3):
        write_version(root, {"n_verdicts": n}, _scores(), _verdicts())
    assert usable_latest(root) == (read_latest(root), [])
    _truncate(root / "v0003" / SCORES_FILE)
    version, skipped = usable_latest(root)
    assert version.name == "v0002" and len(skipped) == 1 and f"v0003/{SCORES_FILE}: damaged" in skipped[0]
    (root / "v0002" / MODEL_FILE).write_text("{cut sh")
    version, skipped = usable_latest(root)
    assert version.name == "v0001" and f"v0002/{MODEL_FILE}: damaged: not valid JSON" in skipped[1]
    (root / LATEST_FILE).write_text("not json")  # the pointer itself: start from the newest folder instead
    version, skipped = usable_latest(root)
    assert version.name == "v0001" and "not a queue-version pointer" in skipped[0] and len(skipped) == 3
    _truncate(root / "v0001" / VERDICTS_FILE)
    version, skipped = usable_latest(root)
    assert version is None and len(skipped) == 4


def test_a_refit_refuses_damaged_predictions_and_writes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _scores().to_parquet(run / "predictions.parquet")
    _truncate(run / "predictions.parquet")
    with pytest.raises(DataError, match="predictions.parquet: damaged: not a readable parquet file") as err:
        refit_run(run, {})
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in run.iterdir()) == ["predictions.parquet"]  # no review folder, no lock file


def test_prune_keeps_the_newest_and_the_latest(tmp_path: Path) -> None:
    root = tmp_path / "review"
    for _ in range(5):
        write_version(root, {}, _scores(), _verdicts())
    assert prune_versions(root, keep=2) == [1, 2, 3]
    assert list_versions(root) == [4, 5] and read_latest(root).number == 5 and next_version(root) == 6
    with pytest.raises(ValueError):
        prune_versions(root, keep=0)


def test_verdicts_hash_ignores_order_but_not_content() -> None:
    a = [("q1", "d1", True), ("q2", "d3", False)]
    assert verdicts_hash(a) == verdicts_hash(a[::-1])
    assert verdicts_hash(a) != verdicts_hash([("q1", "d1", False), ("q2", "d3", False)])
    assert verdicts_hash(a) != verdicts_hash(a[:1])


def _hold(folder: str, ready: mp.Event, seconds: float) -> None:  # type: ignore[valid-type]
    with refit_lock(folder):
        ready.set()
        time.sleep(seconds)


def test_two_refits_never_hold_the_lock_together(tmp_path: Path) -> None:
    root = tmp_path / "review"
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    other = ctx.Process(target=_hold, args=(str(root), ready, 1.5))
    other.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RefitBusy, match=f"pid {other.pid}"):
            with refit_lock(root, wait=0.0):
                pass
        t0 = time.monotonic()
        with refit_lock(root, wait=30.0):  # the later refit waits for the first, then runs
            assert not other.is_alive() or time.monotonic() - t0 > 0.5
            assert (root / LOCK_FILE).read_text() == str(os.getpid())
    finally:
        other.join(30)
    assert other.exitcode == 0


def test_a_killed_refit_releases_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "review"
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    other = ctx.Process(target=_hold, args=(str(root), ready, 60))
    other.start()
    assert ready.wait(30)
    other.kill()
    other.join(30)
    with refit_lock(root, wait=5.0):  # no stale lock to clean up by hand
        pass


def test_fit_version_records_what_it_learnt_from_and_scores_the_rest() -> None:
    frame = synthetic_frame(n_queries=20, per_query=10, seed=1)
    truth = frame["truth"].to_numpy()
    pick = list(np.flatnonzero(truth)[:3]) + list(np.flatnonzero(~truth)[:7])
    verdicts = {(frame["query_id"][i], frame["doc_id"][i]): bool(truth[i]) for i in pick}
    verdicts[("elsewhere", "d0")] = True  # a verdict outside the run's candidates is ignored, and counted
    model, scores, used = fit_version(frame, verdicts, RefitConfig())
    assert (model["n_verdicts"], model["n_false_negatives"], model["n_ignored"]) == (10, 3, 1)
    assert model["fitted"] and set(model["coefficients"]) >= {"score", "pos_sim", "intercept"}
    assert json.loads(json.dumps(model)) == model  # plain JSON, nothing pickled
    assert len(scores) == len(frame) - 10 and set(scores.columns) == {"query_id", "doc_id", "score", "proba"}
    reviewed = set(zip(used["query_id"], used["doc_id"], strict=True))
    assert reviewed.isdisjoint(zip(scores["query_id"], scores["doc_id"], strict=True))
    assert model["verdicts_hash"] == verdicts_hash(zip(used["query_id"], used["doc_id"], used["verdict"]))

    none, prior, _ = fit_version(frame, {}, RefitConfig())
    assert not none["fitted"] and "no verdicts yet" in none["note"] and none["coefficients"] is None
    assert len(prior) == len(frame) and "proba" not in prior
    rejections = {k: False for k in list(verdicts)[3:]}
    one, _, _ = fit_version(frame, rejections, RefitConfig())
    assert not one["fitted"] and "only rejections" in one["note"]


def test_queue_scores_read_the_version_and_fall_back_with_a_note() -> None:
    frame = synthetic_frame(n_queries=5, per_query=4, seed=0)
    frame["margin"] = frame["score"]
    version = pd.DataFrame(
        {"query_id": frame["query_id"][1:], "doc_id": frame["doc_id"][1:], "score": np.arange(len(frame) - 1.0)}
    )
    scores, note = queue_scores(frame, "learnt", version)
    assert note is None and scores[0] == -np.inf and list(scores[1:]) == list(range(len(frame) - 1))
    scores, note = queue_scores(frame, "learnt", None)
    assert "no learnt model yet" in note and np.allclose(scores, frame["p_fn_given_neg"])
    scores, note = queue_scores(frame, "uncertainty", version)  # a version without a fitted model's P(FN)
    assert "no fitted model yet" in note
    version["proba"] = 0.5
    scores, note = queue_scores(frame, "uncertainty", version)
    assert note is None and scores[0] == -np.inf and np.allclose(scores[1:], 0.0)
    assert np.allclose(queue_scores(frame, "retriever")[0], frame["score"])
    assert np.array_equal(queue_scores(frame, "random", seed=3)[0], queue_scores(frame, "random", seed=3)[0])
    with pytest.raises(ValueError, match="unknown order"):
        queue_scores(frame, "p_fn")


def test_each_refit_hands_the_next_the_arms_that_held_each_verdict() -> None:
    """A refit keeps, in model.json, what each arm would show next; the next refit credits verdicts by it."""
    frame = synthetic_frame(n_queries=20, per_query=10, seed=1)
    cfg = RefitConfig()
    first, _, _ = fit_version(frame, {}, cfg)
    state = json.loads(json.dumps(first["bandit_state"]))  # as model.json holds it
    assert state["ledger"] == [] and all(len(v) > 0 for v in state["windows"].values())
    shown = state["windows"]["adapter"][0]
    second, _, _ = fit_version(frame, {(shown[0], shown[1]): True}, cfg, previous=state)
    ledger = second["bandit_state"]["ledger"]
    assert [row[:2] for row in ledger] == [shown] and "adapter" in ledger[0][2]
    assert second["explain"]["arms"]["adapter"]["verdicts"] == 1
    fresh, _, _ = fit_version(frame, {(shown[0], shown[1]): True}, cfg)  # no former version: nothing to credit by
    assert fresh["bandit_state"]["ledger"] == []
