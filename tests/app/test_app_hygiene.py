"""Three house rules of the app, checked on the source of ``app.py`` and every module under ``pages/``.

- All caching lives in one module, ``pages/common/resources.py``: a cache
  anywhere else is one nobody clears or keys by file modification time, and
  serves a retrained run stale.
- Session-state keys are constants, named once in ``pages/common/keys.py``:
  a key spelled twice as a literal is a key that two pages (or a page and its
  tests) can silently disagree on. Widget ``key=`` values are session-state
  keys too.
- A page reads the rows it shows: a run's candidates come through its store
  (``resources.run_store``), never as the whole predictions frame (10M rows:
  24 s and 3.8 GB per read, and ``st.cache_data`` copies it per caller).
  ``tests/app/test_app_reads_the_store.py`` shows the pages work with the file unreadable.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESOURCES = "pages/common/resources.py"
KEYS = "pages/common/keys.py"
STREAMLIT_CACHES = {"cache_data", "cache_resource", "cache", "experimental_memo", "experimental_singleton"}
FUNCTOOLS_CACHES = {"cache", "lru_cache"}
# Calls on st.session_state whose first argument is a key.
KEYED_METHODS = {"get", "setdefault", "pop", "__getitem__", "__setitem__", "__delitem__", "__contains__"}
OTHER_METHODS = {"keys", "values", "items", "clear", "update", "to_dict"}
#: The whole-frame readers of a run's predictions (for scripts and tests at small size) and the cached
#: whole-frame read the app had (``resources.predictions``).
WHOLE_RUN_READERS = {"read_predictions", "read_predictions_table", "predictions"}
PARQUET_READS = {"read_parquet", "read_table", "ParquetFile", "dataset", "read_pandas"}


def _app_files() -> list[str]:
    files = [REPO / "app.py", *sorted((REPO / "pages").rglob("*.py"))]
    return [str(p.relative_to(REPO)) for p in files]


def _is_literal(node: ast.AST) -> bool:
    """A key written in place: a string, an f-string, or one built from them with + or %."""
    if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return True
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) or _is_literal(node.right)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and _is_literal(node.func.value)
    )


def _is_session_state(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "session_state") or (
        isinstance(node, ast.Name) and node.id == "session_state"
    )


def _streamlit_names(tree: ast.AST) -> set[str]:
    """The names ``streamlit`` is bound to in a module (``st`` by convention)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "streamlit"}
    return names


def cache_uses(source: str) -> list[str]:
    """Every use of a Streamlit or functools cache in ``source``, as ``line: code``."""
    tree = ast.parse(source)
    st_names = _streamlit_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("streamlit", "functools"):
            caches = STREAMLIT_CACHES if node.module == "streamlit" else FUNCTOOLS_CACHES
            if any(a.name in caches for a in node.names):
                found.append(node)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id in st_names and node.attr in STREAMLIT_CACHES) or (
                node.value.id == "functools" and node.attr in FUNCTOOLS_CACHES
            ):
                found.append(node)
    return [f"{n.lineno}: {ast.get_source_segment(source, n)}" for n in found]


def literal_keys(source: str) -> list[str]:
    """Every session-state key or widget ``key=`` written as a literal in ``source``, as ``line: code``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_session_state(node.value) and _is_literal(node.slice):
            found.append(node)  # st.session_state["k"], also as an assignment or del target
        elif isinstance(node, ast.Attribute) and _is_session_state(node.value):
            if node.attr not in KEYED_METHODS | OTHER_METHODS:
                found.append(node)  # st.session_state.k
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and _is_session_state(func.value):
                if func.attr in KEYED_METHODS and node.args and _is_literal(node.args[0]):
                    found.append(node)
                elif func.attr == "update" and any(
                    isinstance(a, ast.Dict) and any(k is not None and _is_literal(k) for k in a.keys) for a in node.args
                ):
                    found.append(node)
                elif func.attr == "update" and any(kw.arg is not None for kw in node.keywords):
                    found.append(node)  # update(k=...)
            if any(kw.arg == "key" and _is_literal(kw.value) for kw in node.keywords):
                found.append(node)  # st.button(..., key="k")
        elif isinstance(node, ast.Compare) and _is_literal(node.left):
            if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops) and any(
                _is_session_state(c) for c in node.comparators
            ):
                found.append(node)  # "k" in st.session_state
    found.sort(key=lambda n: (n.lineno, n.col_offset))
    return [f"{n.lineno}: {(ast.get_source_segment(source, n) or '').splitlines()[0]}" for n in found]


def whole_run_reads(source: str) -> list[str]:
    """Every read of a run's whole predictions in ``source``, as ``line: code``: a whole-frame reader imported,
    named or called (``res.predictions(...)``), or a parquet read of ``predictions.parquet``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and any(a.name in WHOLE_RUN_READERS for a in node.names):
            found.append(node)
        elif isinstance(node, ast.Name) and node.id in WHOLE_RUN_READERS - {"predictions"}:
            found.append(node)
        elif isinstance(node, ast.Attribute) and node.attr in WHOLE_RUN_READERS:
            found.append(node)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in PARQUET_READS and any(
                isinstance(c, ast.Constant) and isinstance(c.value, str) and "predictions.parquet" in c.value
                for arg in [*node.args, *(k.value for k in node.keywords)]
                for c in ast.walk(arg)
            ):
                found.append(node)
    found.sort(key=lambda n: (n.lineno, n.col_offset))
    return [f"{n.lineno}: {(ast.get_source_segment(source, n) or '').splitlines()[0]}" for n in found]


def _read(rel: str) -> str:
    return (REPO / rel).read_text(encoding="utf-8")


@pytest.mark.parametrize("rel", [f for f in _app_files() if f != RESOURCES])
def test_only_resources_caches(rel: str) -> None:
    uses = cache_uses(_read(rel))
    assert not uses, f"{rel} caches; move the cached function into {RESOURCES}:\n" + "\n".join(uses)


def test_resources_holds_the_caches() -> None:
    # Not vacuous: the one module does cache (datasets, predictions, logs, maps).
    assert len(cache_uses(_read(RESOURCES))) >= 10


@pytest.mark.parametrize("rel", _app_files())
def test_no_page_reads_a_whole_runs_predictions(rel: str) -> None:
    found = whole_run_reads(_read(rel))
    assert not found, (
        f"{rel} reads a run's whole predictions; read the rows it shows from resources.run_store "
        "(candidates, pair_rows, query_rows, negatives_at, counts):\n" + "\n".join(found)
    )


@pytest.mark.parametrize("rel", _app_files())
def test_session_state_keys_are_constants(rel: str) -> None:
    found = literal_keys(_read(rel))
    assert not found, f"{rel} writes session-state keys as literals; name them in {KEYS}:\n" + "\n".join(found)


def test_key_constants_are_distinct() -> None:
    """Two names for one key would let two widgets or pages share state by accident."""
    tree = ast.parse(_read(KEYS))
    values: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                assert isinstance(target, ast.Name)
                assert node.value.value not in values, f"{target.id} and {values[node.value.value]} share a key"
                values[node.value.value] = target.id
    assert {"sb_run", "top_suspects", "_review_threshold", "browser_query"} <= set(values)


def test_the_checks_catch_what_they_forbid() -> None:
    bad = """
import functools
import streamlit as st
from streamlit import cache_data

@st.cache_data(ttl=3)
def a(): ...

@functools.lru_cache
def b(): ...

x = st.session_state["k"]
st.session_state[f"_{x}_for"] = 1
st.session_state.get("k")
st.session_state.setdefault("k", set())
st.session_state.pop("k" + x, None)
st.session_state.__setitem__("k", 1)
st.session_state.k = 2
del st.session_state["k"]
if "k" not in st.session_state: ...
st.session_state.update({"k": 1})
st.button("Go", key="go")
st.button("Go", key=f"go_{x}")
"""
    assert len(cache_uses(bad)) == 3
    assert [line.split(":")[0] for line in literal_keys(bad)] == [
        str(n) for n in (12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)
    ]
    good = """
import streamlit as st
from pages.common import keys
st.session_state[keys.QUERY] = st.session_state.get(keys.BROWSER_FOCUS, 0)
st.session_state.pop(keys.DYN_RUN, None)
if keys.DYN_SMOOTH not in st.session_state: ...
st.button("Go", key=keys.review_label("relevant"))
st.button("Go", key=key or keys.chart(name))
sorted(xs, key=len)
"""
    assert cache_uses(good) == [] and literal_keys(good) == []


def test_the_whole_run_check_catches_each_way_in() -> None:
    bad = """
from rrra_core.analysis.candidates import read_predictions
from rrra_core.analysis import candidates
import pandas as pd
import pyarrow.parquet as pq
from pages.common import resources as res
a = read_predictions(path)
b = candidates.read_predictions_table(path)
c = res.predictions(run_id)
d = pd.read_parquet(run.file("predictions.parquet"))
e = pq.ParquetFile(folder / "predictions.parquet")
"""
    assert [line.split(":")[0] for line in whole_run_reads(bad)] == ["2", "7", "8", "9", "10", "11"]
    good = """
from pages.common import resources as res
store = res.run_store(run_id)
rows = store.pair_rows(pairs)
path = run.file("predictions.parquet")
grads = pq.read_table(run.file("gradients.parquet"), columns=["step"])
"""
    assert whole_run_reads(good) == []
