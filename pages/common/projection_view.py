"""Embedding-map helpers: the projection job, colours and the Plotly figure.

The map is computed by ``scripts/project.py`` in its own process
(``rrra_core.runtime.jobs``) and saved in the run folder; ``resources.projection``
reads it (cached), and this module starts that job when a map is missing and
follows its ``progress.json`` from an ``st.fragment``. The figure builders are plain functions (frames in,
figure out) so the tests check colours, arrows and escaping directly.

Safety: Plotly renders a few HTML tags (``<b>``, ``<br>``, ``<a>``) in hover
text, so every piece of user data (ids, query and document text) goes
through :func:`html.escape` before it reaches the figure.
"""

from __future__ import annotations

import html
import json
import math
import sys
import textwrap
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from rrra_core.analysis.candidates import predicted_class
from rrra_core.analysis.projection import Scope, numba_cache_dir, projection_paths
from rrra_core.runtime import jobs
from rrra_core.runtime.runs import Run

from . import jobs_view, keys
from .model_view import conditional_text
from .widgets import CLASS_COLOURS, doc_text, md_escape, short, show_text

JOB_KIND = "projection"

COLOUR_CLASS = "Predicted class"
COLOUR_PFN = "P(FN|neg)"
COLOUR_HUMAN = "Human label"
COLOUR_PLANTED = "Planted false negative"

QUERY_COLOUR = "#212121"
OTHER_COLOUR = "#cfd8dc"
CATEGORY_COLOURS = {
    **CLASS_COLOURS,
    "positive not retrieved": "#1565c0",
    "no candidate pair": OTHER_COLOUR,
    "relevant": "#2e7d32",
    "not relevant": "#78909c",
    "unsure": "#f9a825",
    "disagreement": "#6a1b9a",
    "unlabelled": OTHER_COLOUR,
    "planted false negative": "#d84315",
    "labelled positive": "#2e7d32",
    "other": OTHER_COLOUR,
    "no P(FN|neg)": OTHER_COLOUR,
}
SYMBOLS = {"query": "star", "candidate": "circle", "corrected": "diamond", "positive": "square", "doc": "circle"}
KIND_TEXT = {
    "query": "query",
    "candidate": "candidate c",
    "corrected": "corrected a",
    "positive": "labelled positive, not retrieved",
    "doc": "document",
}
HOVER_CHARS = 400
HOVER_WIDTH = 80
#: Query stars the global map draws unless asked for all: more hide the documents under them.
GLOBAL_STARS = 12
#: Pixels an arrow stops short of its head point, so the arrowhead lands on a's marker edge, not under it.
ARROW_STANDOFF = 5


# --- the background job ---------------------------------------------------------------


def job_id(run: Run, scope: Scope) -> str:
    return f"projection-{run.id}-{scope.key}"


def project_command(run: Run, scope: Scope) -> list[str]:
    # --query=ID keeps an id that starts with '-' from reading as a flag. A query's job also lays out the
    # run's global map (if missing or stale) while UMAP is compiled and the vectors are at hand.
    where = ["--global"] if scope.is_global else [f"--query={scope.query_id}", "--with-global"]
    return [sys.executable, "scripts/project.py", "--run", str(run.path), *where]


def start(run: Run, scope: Scope) -> None:
    jid = job_id(run, scope)
    st.session_state.setdefault(keys.MAP_LAUNCHED, set()).add(jid)
    projection_paths(run, scope)[2].unlink(missing_ok=True)  # a previous job's "done" must not show as this one's
    jobs.start_job(
        jid,
        project_command(run, scope),
        kind=JOB_KIND,
        meta={"run": run.id, "scope": scope.key, "query_id": scope.query_id},
        # numba keeps UMAP's compiled code there: only the first job ever pays the compile (~a minute).
        env={"NUMBA_CACHE_DIR": str(numba_cache_dir())},
    )


def _progress(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def compute_or_follow(run: Run, scope: Scope, *, stale: bool = False) -> None:
    """Start the map's job if it is missing (once per session), else follow it; one map job at a time.

    UMAP compiles its numba code on the first fit in each process, so even a
    small map takes a while the first time: the bar shows the stage and the
    seconds spent.
    """
    jid = job_id(run, scope)
    state = jobs.job_state(jid)
    if state is not None and state.active:
        _follow(jid, projection_paths(run, scope)[2], "Computing the map", projection_paths(run, scope)[1])
        return
    # Two CPU cores: a second UMAP would only slow the first down.
    other = next((s for s in jobs.list_jobs(JOB_KIND) if s.active), None)
    if other is not None:
        st.info("Another map is being computed; this one starts when it is done.")
        other_run = Path(other.command[other.command.index("--run") + 1]) if "--run" in other.command else run.path
        _follow(
            other.id,
            Run(other_run).file("projections") / f"{other.meta.get('scope', '')}.progress.json",
            "Computing another map",
        )
        return
    first_time = state is None or (state.status == "done" and jid not in st.session_state.get(keys.MAP_LAUNCHED, set()))
    if first_time:
        start(run, scope)
        _follow(jid, projection_paths(run, scope)[2], "Computing the map", projection_paths(run, scope)[1])
        return
    if state.status in ("failed", "lost", "cancelled"):
        st.error(
            f"Computing this map {state.status}: {md_escape(state.error or 'the process ended without finishing', 300)}"
        )
        with st.expander("Job log"):
            show_text(jobs.log_tail(jid, 40))
    elif stale:
        st.warning("This map was made from older predictions of the run.")
    if st.button("Compute the map", key=keys.MAP_COMPUTE, type="primary"):
        start(run, scope)
        st.rerun()


def _ready(settings: Path | None, since: float) -> bool:
    """Whether the map's JSON was written after ``since``: it is drawable though its job goes on (global map)."""
    try:
        return settings is not None and settings.stat().st_mtime >= since
    except FileNotFoundError:
        return False


def _follow(jid: str, progress_file: Path, what: str, settings: Path | None = None) -> None:
    @st.fragment(run_every=1.0)
    def progress() -> None:
        state = jobs.job_state(jid)
        if state is None or not state.active or _ready(settings, state.started_at or time.time()):
            st.rerun(scope="app")
            return
        info = _progress(progress_file)
        elapsed = time.time() - (state.started_at or time.time())
        stage = md_escape(str(info.get("stage", "starting Python")), 160)
        st.progress(min(1.0, max(0.0, float(info.get("fraction", 0.0)))), text=f"{what}: {stage} ({elapsed:.0f} s)")
        if st.button("Cancel", key=keys.job_cancel(jid)):
            jobs_view.cancel(jid)
            st.rerun(scope="app")

    progress()


# --- colours ---------------------------------------------------------------------------


def has_pair(points: pd.DataFrame) -> pd.Series:
    """Rows that stand for a (query, document) pair people can judge."""
    return points["doc_id"].notna() & points["query_id"].notna()


def pair_key(query_id: str, doc_id: str) -> str:
    return f"{query_id}\t{doc_id}"


def colour_values(
    points: pd.DataFrame,
    colour_by: str,
    *,
    human: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    known: Mapping[str, Collection[str]] | None = None,
) -> pd.Series:
    """Each point's colour: a category name, or a float in [0, 1] for ``P(FN|neg)`` (queries: ``"query"``)."""
    out = pd.Series(["other"] * len(points), index=points.index, dtype=object)
    scored = points["p_tp"].notna()
    pos = points["label"].fillna(0) > 0
    if colour_by == COLOUR_CLASS:
        if scored.any():
            out[scored] = predicted_class(points[scored])
        out[~scored & (points["kind"] == "positive")] = "positive not retrieved"
        out[~scored & (points["kind"] != "positive")] = "no candidate pair"
    elif colour_by == COLOUR_PFN:
        neg = scored & ~pos
        out[neg] = points.loc[neg, "p_fn_given_neg"].astype(float)
        out[~neg & pos] = "labelled positive"
        out[~neg & ~pos] = "no P(FN|neg)"
    elif colour_by == COLOUR_HUMAN:
        human = human or {}
        for i, q, d in zip(points.index, points["query_id"], points["doc_id"]):
            labels = set(human.get((q, d), {}).values()) if isinstance(d, str) else set()
            out[i] = (
                "unlabelled"
                if not labels
                else (next(iter(labels)).replace("_", " ") if len(labels) == 1 else "disagreement")
            )
    elif colour_by == COLOUR_PLANTED:
        known = known or {}
        planted = [isinstance(d, str) and d in known.get(q, ()) for q, d in zip(points["query_id"], points["doc_id"])]
        out[:] = np.where(pos, "labelled positive", np.where(planted, "planted false negative", "other"))
    else:
        raise ValueError(f"unknown colouring {colour_by!r}")
    out[points["kind"] == "query"] = "query"
    return out


# --- hover text and the figure ------------------------------------------------------------


def _lines(text: str) -> str:
    """User text made inert for Plotly hover and wrapped: escaped first, then joined with our own <br>."""
    return "<br>".join(html.escape(line) for line in textwrap.wrap(short(text, HOVER_CHARS), HOVER_WIDTH)) or "(empty)"


def _num(v: Any, fmt: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(float(v), fmt)


def hover_texts(points: pd.DataFrame, queries: Mapping[str, str], corpus: Mapping[str, Any]) -> list[str]:
    """One hover label per point: what it is, the adapter's numbers, and the text (all user data escaped)."""
    out = []
    for row in points.to_dict("records"):
        kind, q, d = row["kind"], row["query_id"], row["doc_id"]
        if kind == "query":
            out.append(f"<b>query</b> {html.escape(str(q))}<br>{_lines(queries.get(q, ''))}")
            continue
        head = f"<b>{KIND_TEXT[kind]}</b> {html.escape(str(d))}"
        if isinstance(q, str) and not pd.isna(row.get("p_tp")):
            rank = row.get("rank")
            head += (
                f"<br>{'for query ' + html.escape(q) + ' · ' if kind == 'doc' else ''}rank #{int(rank) + 1}"
                f" · {'labelled positive' if row.get('label', 0) > 0 else 'labelled negative'}"
                f" · {conditional_text(row)} · P(rel) {_num(row.get('p_rel'))}"
            )
            if kind == "corrected":
                head += f"<br>QA cos(q, a) {_num(row.get('qa'))} · CA cos(a, c) {_num(row.get('ca'))}"
        out.append(f"{head}<br>{_lines(doc_text(corpus.get(d)))}")
    return out


def _category_order(values: pd.Series) -> list[str]:
    cats = [v for v in dict.fromkeys(values) if isinstance(v, str) and v != "query"]
    rank = {c: i for i, c in enumerate(CATEGORY_COLOURS)}
    return sorted(cats, key=lambda c: rank.get(c, len(rank)))


def _add_arrows(fig: go.Figure, points: pd.DataFrame) -> None:
    """One annotation arrow per corrected point ``a``, from its candidate ``c`` (``arrow_from``) to it."""
    xy = points[["x", "y"]].to_numpy()
    for i, j in zip(
        np.flatnonzero(points["arrow_from"].to_numpy() >= 0), points.loc[points["arrow_from"] >= 0, "arrow_from"]
    ):
        fig.add_annotation(
            x=xy[i, 0],
            y=xy[i, 1],
            ax=xy[j, 0],
            ay=xy[j, 1],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            text="",
            showarrow=True,
            # A filled head, large enough to read and ending at a's marker edge (standoff), drawn above
            # the markers: a head at a's centre hid under the diamond, so the lines read as undirected.
            arrowhead=2,
            arrowside="end",
            arrowsize=1.4,
            arrowwidth=1.3,
            standoff=ARROW_STANDOFF,
            arrowcolor="rgba(38, 50, 56, 0.7)",
        )


def build_figure(
    points: pd.DataFrame, colours: pd.Series, hover: Sequence[str], *, arrows: bool = True, height: int = 640
) -> go.Figure:
    """The map: one trace per colour (plus a colour scale for P(FN|neg)), symbols by kind, arrows c → a.

    Every marker's ``customdata`` is its row in ``points``, so a selection maps
    back to points whatever the trace order.
    """
    hover = np.asarray(hover, dtype=object)
    fig = go.Figure()

    def add(mask: pd.Series, name: str, colour: Any, **marker: Any) -> None:
        rows = points[mask]
        if rows.empty:
            return
        idx = np.flatnonzero(mask.to_numpy())
        size = np.where(rows["kind"] == "query", 16, np.where(rows["kind"] == "corrected", 8, 9))
        line_w = np.where(rows["label"].fillna(0) > 0, 2.0, 0.5)  # a thick outline marks labelled positives
        fig.add_trace(
            go.Scatter(
                x=rows["x"],
                y=rows["y"],
                mode="markers",
                name=name,
                customdata=idx,
                hovertext=hover[idx],
                hoverinfo="text",
                marker={
                    "color": colour,
                    "symbol": [SYMBOLS[k] for k in rows["kind"]],
                    "size": size,
                    "line": {"width": line_w, "color": "#263238"},
                    **marker,
                },
            )
        )

    numeric = colours.map(lambda v: isinstance(v, float))
    if numeric.any():
        add(
            numeric,
            "P(FN|neg)",
            colours[numeric].astype(float).to_numpy(),
            colorscale="YlOrRd",
            cmin=0.0,
            cmax=1.0,
            colorbar={"title": {"text": "P(FN|neg)"}, "len": 0.6},
            showscale=True,
        )
    for cat in _category_order(colours[~numeric]):
        add(colours == cat, cat, CATEGORY_COLOURS.get(cat, OTHER_COLOUR))
    add(colours == "query", "query", QUERY_COLOUR)

    if arrows:
        _add_arrows(fig, points)
    _layout(fig, height)
    return fig


def _layout(fig: go.Figure, height: int) -> None:
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"itemsizing": "constant"},
        xaxis={"showticklabels": False, "title": None, "zeroline": False},
        yaxis={"showticklabels": False, "title": None, "zeroline": False},
        hoverlabel={"align": "left"},
        plot_bgcolor="white",
        # One click selects one point. Streamlit turns a click into a selection only while the drag mode is
        # pan or zoom (with "select" or "lasso" a click is a plain event), so box and lasso stay one toolbar
        # click away instead of being the default.
        clickmode="event+select",
        dragmode="pan",
    )


# --- the global view --------------------------------------------------------------------


def thin_stars(points: pd.DataFrame, keep: int = GLOBAL_STARS) -> pd.DataFrame:
    """The global map's points with at most ``keep`` query stars, spread evenly over the sample; every document stays.

    A hundred stars of size 16 cover the documents the map is for. Only for
    the global scope, which has no arrows (``arrow_from`` points at rows, and
    rows are dropped here).
    """
    is_query = (points["kind"] == "query").to_numpy()
    rows = np.flatnonzero(is_query)
    if len(rows) <= keep:
        return points
    keep_mask = ~is_query
    keep_mask[rows[np.linspace(0, len(rows) - 1, keep).round().astype(int)]] = True
    return points[keep_mask].reset_index(drop=True)


# --- selection --------------------------------------------------------------------------


def selected_rows(fig: go.Figure, selected: Sequence[Mapping[str, Any]]) -> list[int]:
    """Rows of ``points`` behind a chart selection (Streamlit's ``event.selection.points``)."""
    rows = []
    for p in selected:
        cd = p.get("customdata")
        if isinstance(cd, list):
            cd = cd[0] if cd else None
        if cd is None:
            try:
                cd = fig.data[int(p["curve_number"])].customdata[int(p["point_index"])]
            except (KeyError, IndexError, TypeError, ValueError):
                continue
        rows.append(int(cd))
    return list(dict.fromkeys(rows))


def row_pair_keys(points: pd.DataFrame) -> list[str | None]:
    """Each row's :func:`pair_key` (``None`` for queries), in row order."""
    return [pair_key(q, d) if ok else None for q, d, ok in zip(points["query_id"], points["doc_id"], has_pair(points))]


def pair_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per judgeable pair (c and its a are one pair), keyed by :func:`pair_key`."""
    pairs = points[has_pair(points)].copy()
    pairs["key"] = [pair_key(q, d) for q, d in zip(pairs["query_id"], pairs["doc_id"])]
    scored = pairs["p_tp"].notna()
    pairs["verdict"] = "—"
    if scored.any():
        pairs.loc[scored, "verdict"] = predicted_class(pairs[scored])
    return pairs.drop_duplicates("key").set_index("key", drop=False)


def labeling_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The predictions-row view ``labeling.save`` records with a judgment."""
    keep = ("query_id", "doc_id", "p_tp", "p_fn", "p_fp", "p_tn", "rank", "score")
    return {k: row.get(k) for k in keep}
