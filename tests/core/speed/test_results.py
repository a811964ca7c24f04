"""The speed results files: a result headed by its command and machine, written, read back and rendered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrra_core.runtime.paths import REPO_ROOT
from rrra_core.speed import attach_notes, measure_part, read_result, render, write_result
from rrra_core.speed.render import header

PARTS = ("encode", "latency", "index", "train")


@pytest.mark.parametrize("part", PARTS)
def test_rendering_a_committed_result_reproduces_its_markdown(part: str) -> None:
    # --render-only rewrites the Markdown from the JSON alone; the notes are re-read from
    # speed_<part>.notes.md at that point, so only the measured part is compared here.
    result = read_result(REPO_ROOT / "results" / f"speed_{part}")
    committed = (REPO_ROOT / "results" / f"speed_{part}.md").read_text(encoding="utf-8")
    rendered = render(result)
    assert rendered.startswith("# Speed:") and f"Command: `{result['command']}`" in rendered
    assert rendered.split("## Notes")[0] == committed.split("## Notes")[0]


def test_notes_are_taken_from_the_notes_file_on_every_rendering(tmp_path: Path) -> None:
    result = read_result(REPO_ROOT / "results" / "speed_train")
    notes = tmp_path / "speed_train.notes.md"
    notes.write_text("- **Tried.** something new.\n", encoding="utf-8")
    attach_notes(result, notes)
    assert result["notes_md"] == ["## Notes", "", "- **Tried.** something new.", ""]
    assert render(result).endswith("## Notes\n\n- **Tried.** something new.\n\n")
    notes.unlink()
    attach_notes(result, notes)
    assert "notes_md" not in result and "## Notes" not in render(result)


def test_a_measured_result_is_headed_by_command_load_and_machine(tmp_path: Path) -> None:
    result = measure_part("train", "python scripts/bench_speed.py train", "cpu", lambda: {"variants": {}})
    assert list(result)[:6] == ["command", "part", "started", "wall_seconds", "load", "machine"]
    assert result["variants"] == {} and result["part"] == "train"
    assert len(result["load"]["before"]) == 3 and len(result["load"]["after"]) == 3
    assert result["machine"]["cpu"] and result["machine"]["device"] == "cpu"
    head = "\n".join(header("Speed: a test", result))
    assert "Command: `python scripts/bench_speed.py train`" in head and "Load average" in head

    stem = tmp_path / "speed_train"
    write_result(stem, result, "# Speed: a test\n")
    assert read_result(stem) == json.loads(json.dumps(result))
    assert stem.with_suffix(".md").read_text(encoding="utf-8") == "# Speed: a test\n"
