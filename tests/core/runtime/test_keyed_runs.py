"""Run folders keyed by their settings: reused when finished, resumed when half done, never mixed up."""

from __future__ import annotations

from pathlib import Path

from rrra_core.runtime.keyed_runs import data_key, keyed_run, settings_key


def test_keyed_runs_are_reused_only_for_the_same_settings(tmp_path: Path) -> None:
    with keyed_run("x-s0-phase1", "phase1", {"lr": 1e-5}, root=tmp_path) as (run, done):
        assert not done
    # Started but not finished: the same folder comes back, to be resumed.
    with keyed_run("x-s0-phase1", "phase1", {"lr": 1e-5}, root=tmp_path) as (half, done):
        assert not done and half.path == run.path
        run.write_json("progress.json", {"status": "done"})
    with keyed_run("x-s0-phase1", "phase1", {"lr": 1e-5}, root=tmp_path) as (again, done):
        assert done and again.path == run.path
    with keyed_run("x-s0-phase1", "phase1", {"lr": 2e-5}, root=tmp_path) as (other, done):
        assert not done and other.path != run.path


def test_keys_ignore_key_order_but_not_labels() -> None:
    assert settings_key({"a": 1, "b": 2}) == settings_key({"b": 2, "a": 1})
    # The same queries with a hidden positive are a different training set.
    assert data_key({"q1": {"d1": 1, "d2": 1}}) != data_key({"q1": {"d1": 1}})
    # Pinned: fair-comparison run folders made before this module existed keep their names.
    assert settings_key({"lr": 1e-5}) == "5dfd0347bb"


def test_a_finished_run_drops_its_resumable_checkpoints_and_a_killed_one_keeps_them(tmp_path: Path) -> None:
    def checkpoints(run) -> list[str]:  # noqa: ANN001
        return sorted(p.name for p in run.path.glob("checkpoint*"))

    class Killed(Exception):
        pass

    try:
        with keyed_run("x-s0-phase3", "phase3", {"k": 1}, root=tmp_path) as (run, _):
            for name in ("checkpoint", "checkpoint.prev"):
                (run.path / name).mkdir()
            raise Killed
    except Killed:
        pass
    assert checkpoints(run) == ["checkpoint", "checkpoint.prev"]  # a resume needs them
    with keyed_run("x-s0-phase3", "phase3", {"k": 1}, root=tmp_path) as (run, done):
        assert not done
        (run.path / "model").mkdir()
    assert checkpoints(run) == ["checkpoint", "checkpoint.prev"]  # still not finished
    with keyed_run("x-s0-phase3", "phase3", {"k": 1}, root=tmp_path) as (run, done):
        run.write_json("progress.json", {"status": "done"})
    assert checkpoints(run) == [] and (run.path / "model").is_dir()  # the final model stays
