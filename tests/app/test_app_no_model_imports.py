"""The app process never loads torch or transformers: a later launch must reach a page in seconds.

Importing torch and transformers costs about 6 s on a 2-core machine; the
overview once paid it on every launch through an innocent import. Every page
runs here in a fresh interpreter, and the test fails if any of them pulls in a
model library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
sys.path.insert(0, {repo!r})
from streamlit.testing.v1 import AppTest
pages = {pages!r}
at = AppTest.from_file({app!r}, default_timeout=120)
at.run()
errors = [str(e.value) for e in at.exception]
for page in pages:
    at.switch_page(page)
    at.run()
    errors += [f"{{page}}: {{e.value}}" for e in at.exception]
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "faiss", "umap") if m in sys.modules)
print(json.dumps({{"heavy": heavy, "errors": errors}}))
"""


def test_no_page_imports_a_model_library(tmp_path: Path) -> None:
    # team/ pages are registered only when sign-in is configured (tests/app/test_app_team.py); this probe is solo mode
    pages = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "pages").glob("*/*.py") if p.parent.name not in ("common", "team")
    )
    assert len(pages) >= 8
    code = PROBE.format(repo=str(REPO), pages=pages, app=str(REPO / "app.py"))
    env = {"RRRA_HOME": str(tmp_path), "RRRA_ANNOTATOR": "probe", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["heavy"] == [], f"the app imported {result['heavy']}"
