"""First launch on an empty home: the overview offers the demo, builds it in the background, then shows it.

Real work: the bundled MiniLM encodes the SQuAD demo corpus and the adapter
is trained (a few minutes on 2 cores), so this is marked slow.
"""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from rrra_core.runtime import jobs
from rrra_core.runtime.runs import open_run
from rrra_core.workflows.demo import demo_run_id
from tests.app.conftest import APP


@pytest.mark.slow
def test_first_launch_builds_the_demo_run_with_progress_and_then_shows_it() -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    next(b for b in at.button if b.label == "Build the demo run").click().run()
    assert not at.exception
    state = jobs.job_state("demo-build")
    assert state is not None and state.kind == "demo"
    seen_progress = False
    deadline = time.time() + 600
    while (state := jobs.job_state("demo-build")).active and time.time() < deadline:
        at.run()
        seen_progress = seen_progress or any(
            "Building the demo run" in (p.proto.text or "") for p in at.get("progress")
        )
        time.sleep(2)
    assert state.status == "done", jobs.log_tail("demo-build", 30)
    assert seen_progress
    assert open_run(demo_run_id("squad")).file("predictions.parquet").is_file()
    at.run()
    assert at.sidebar.selectbox(key="sb_run").value == "demo-squad"
    assert len(at.dataframe(key="top_suspects").value) > 0
