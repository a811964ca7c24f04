"""Charts and tables people can put in a paper: every Plotly chart exports SVG, every table CSV.

Plotly's own toolbar button saves the chart in the browser (no server-side
renderer or Chrome needed); we set it to SVG with a meaningful file name.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from . import keys

PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "scale": 1}}


def chart(fig: Any, name: str, *, key: str | None = None, **kwargs: Any) -> Any:
    """``st.plotly_chart`` whose camera button downloads ``<name>.svg``."""
    config = {**PLOT_CONFIG, "toImageButtonOptions": {**PLOT_CONFIG["toImageButtonOptions"], "filename": name}}
    return st.plotly_chart(fig, config=config, key=key or keys.chart(name), **kwargs)


def csv_button(df: pd.DataFrame, name: str, *, label: str = "Download CSV", key: str | None = None) -> None:
    """A button that downloads ``df`` as ``<name>.csv`` (index dropped)."""
    st.download_button(
        label,
        df.to_csv(index=False).encode("utf-8"),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=key or keys.csv(name),
        icon=":material/download:",
    )
