"""Overview: the embedded datasets and the runs on disk."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common.resources import DATASETS, dataset_stats, runs_table

st.title("RRRA Studio")
st.caption("Find and fix false negatives in dense-retriever training data.")

st.subheader("Datasets")
st.dataframe(pd.DataFrame([dataset_stats(name) for name in DATASETS]), hide_index=True)

st.subheader("Runs")
rows = runs_table()
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True)
else:
    st.info("No runs yet. Train one with `python scripts/train.py --dataset scifact` (see README).")
