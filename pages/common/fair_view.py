"""The fair comparison on the Ablations page: tuned methods on test, paired tests, and the dev tuning table.

Reads ``results/fair_<dataset>.json`` (``scripts/benchmark.py --preset fair-…``);
the verdict sentence is the result file's own, so the page never says more
than the file does.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from rrra_core.analysis.results_view import fair_tables, list_fair_files, load_fair, target_verdict
from rrra_core.runtime.errors import DataError

from . import keys
from .downloads import csv_button
from .widgets import md_escape


def fair_section(folder: Path) -> bool:
    """Draw a fair-comparison file of ``folder`` if there is one; returns whether it did."""
    files = list_fair_files(folder)
    if not files:
        return False
    names = [p.name for p in files]
    name = st.selectbox("Fair-comparison file", names, key=keys.BENCH_FAIR_FILE)
    try:
        result = load_fair(folder / name)
    except DataError as err:
        st.error(md_escape(str(err)))
        return True
    st.code(str(result.get("command", "")), language="bash", wrap_lines=True)
    st.markdown(md_escape(target_verdict(result)))
    unfinished = [str(p["seed"]) for p in result.get("parts", []) if not p.get("finished")]
    if unfinished:
        st.warning(f"Incomplete: seed(s) {', '.join(unfinished)} not finished; the same command resumes them.")
    tables = fair_tables(result)
    stem = Path(name).stem
    st.markdown("**Test split, chosen settings (mean ± std over seeds)**")
    st.dataframe(tables["methods"], hide_index=True, key=keys.BENCH_FAIR_METHODS)
    csv_button(tables["methods"], f"{stem}_methods", key=keys.BENCH_FAIR_METHODS_CSV)
    st.markdown("**Paired tests against the best baseline** (ranx, over test queries)")
    st.dataframe(tables["tests"], hide_index=True, key=keys.BENCH_FAIR_TESTS)
    st.markdown("**Tuning on the dev split** (the same number of trials per method; ✓ = chosen)")
    st.dataframe(tables["tuning"], hide_index=True, key=keys.BENCH_FAIR_TUNING)
    csv_button(tables["tuning"], f"{stem}_tuning", key=keys.BENCH_FAIR_TUNING_CSV)
    return True
