"""Embedding maps: which points a scope holds, that c and a come from the run's encoder and adapter.

Also determinism and caching.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.analysis.projection import (
    ProjectionConfig,
    Scope,
    compute_projection,
    fit_2d,
    global_scope_points,
    load_projection,
    projection_paths,
    query_scope_points,
    representative_pairs,
)
from rrra_core.runtime.paths import REPO_ROOT

SMALL = ProjectionConfig(top_k=10, global_queries=12, global_top_k=3, global_docs=40, n_epochs=50)


@dataclass(frozen=True)
class Built:
    home: Path
    run_id: str
    query: str


@pytest.fixture(scope="module")
def built(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A real phase-2 run on ADI (tiny random BERT) with its embedding cache, built once."""
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2

    home = tmp_path_factory.mktemp("proj_home")
    old = os.environ.get("RRRA_HOME")
    os.environ["RRRA_HOME"] = str(home)
    try:
        enc = EncoderConfig(
            model=str(tiny_model_dir_session), query_max_length=16, doc_max_length=32, encode_batch_size=32
        )
        p2 = Phase2Config(
            dataset="adi",
            train_split="test",
            labels=LabelConfig(top_k=20, fp_rank_range=(20, 40)),
            fit=AdapterFitConfig(epochs=2, batch_size=64),
        )
        run = create_run("phase2", phase2_config_dict(enc, p2), run_id="adi-proj")
        train_phase2(run, enc, p2)
    finally:
        if old is None:
            os.environ.pop("RRRA_HOME", None)
        else:
            os.environ["RRRA_HOME"] = old
    preds = pd.read_parquet(run.file("predictions.parquet"))
    return Built(home=home, run_id=run.id, query=str(preds["query_id"].iloc[0]))


@pytest.fixture()
def run(built: Built, isolated_home: Path):
    """This test's own copy of the run and of the embedding cache it filled."""
    from rrra_core.runtime.runs import open_run

    shutil.copytree(built.home, isolated_home, dirs_exist_ok=True)
    return open_run(built.run_id)


def _cache_entries(home: Path) -> set[str]:
    folder = home / ".rrra" / "cache" / "embeddings"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


# --- pure pieces ------------------------------------------------------------------------


def _cands(q: str, docs: list[str], labels: list[int], p_fn: list[float]) -> pd.DataFrame:
    n = len(docs)
    return pd.DataFrame(
        {
            "query_id": [q] * n,
            "doc_id": docs,
            "rank": range(n),
            "score": np.linspace(0.9, 0.5, n),
            "label": labels,
            "p_tp": 0.1,
            "p_fn": 0.2,
            "p_fp": 0.1,
            "p_tn": 0.6,
            "p_fn_given_neg": p_fn,
            "p_fp_given_pos": 0.1,
            "p_rel": 0.3,
            "qa": 0.5,
            "ca": 0.9,
        }
    )


def test_query_scope_holds_query_top_k_corrections_and_missed_positives() -> None:
    vecs = {f"d{i}": np.eye(8, dtype=np.float32)[i % 8] for i in range(12)}
    cands = _cands("q", [f"d{i}" for i in range(10)], [0] * 7 + [1, 0, 0], [0.1] * 10)

    def doc_vec(ids):
        return np.stack([vecs[d] for d in ids]) if ids else np.zeros((0, 8), np.float32)

    pts = query_scope_points("q", np.ones(8, np.float32), cands, ["d7", "d11"], doc_vec, lambda q, c: c + q, top_k=3)
    df = pts.points
    assert df["kind"].tolist() == ["query"] + ["candidate"] * 4 + ["corrected"] * 4 + ["positive"]
    # The top 3, plus the positive ranked 8th; the never-retrieved positive d11 stands alone.
    assert df.loc[df["kind"] == "candidate", "doc_id"].tolist() == ["d0", "d1", "d2", "d7"]
    assert df.loc[df["kind"] == "positive", "doc_id"].tolist() == ["d11"]
    # Each a points back at its c, and its vector is the correction of that c.
    for i in df.index[df["kind"] == "corrected"]:
        j = df.at[i, "arrow_from"]
        assert df.at[j, "kind"] == "candidate" and df.at[j, "doc_id"] == df.at[i, "doc_id"]
        np.testing.assert_allclose(pts.vectors[i], pts.vectors[j] + 1.0)
    assert len(pts.vectors) == len(df)
    # Every positive retrieved (nothing missed): no empty-array trouble.
    alone = query_scope_points("q", np.ones(8, np.float32), cands, ["d0"], doc_vec, lambda q, c: c + q, top_k=3)
    assert alone.points["kind"].tolist() == ["query"] + ["candidate"] * 3 + [
        "corrected"
    ] * 3 and alone.vectors.shape == (7, 8)


def test_representative_pair_prefers_the_labelled_positive_then_the_most_suspect() -> None:
    df = pd.concat(
        [
            _cands("q1", ["a", "b"], [0, 0], [0.2, 0.9]),
            _cands("q2", ["a", "b"], [1, 0], [0.0, 0.3]),
        ]
    )
    rep = representative_pairs(df).set_index("doc_id")
    assert rep.at["a", "query_id"] == "q2"  # a labelled positive of q2
    assert rep.at["b", "query_id"] == "q1"  # most suspect: P(FN|neg) 0.9


def test_global_sample_is_seeded_and_puts_positives_and_top_candidates_first() -> None:
    rng = np.random.default_rng(1)
    corpus = [f"d{i}" for i in range(50)]
    preds = pd.concat(
        [_cands(f"q{k}", list(rng.choice(corpus, 6, replace=False)), [0] * 6, [0.1] * 6) for k in range(20)]
    )
    qrels = {f"q{k}": {f"d{40 + k % 10}": 1} for k in range(20)}

    def vec(ids):
        return np.ones((len(ids), 4), np.float32)

    scored = list(dict.fromkeys(preds["query_id"]))
    read: list[list[str]] = []

    def rows_of(queries):
        read.append(list(queries))
        return preds[preds["query_id"].isin(set(queries))]

    cfg = ProjectionConfig(global_queries=5, global_top_k=2, global_docs=30)
    a = global_scope_points(scored, rows_of, qrels, corpus, vec, vec, cfg).points
    b = global_scope_points(scored, rows_of, qrels, corpus, vec, vec, cfg).points
    pd.testing.assert_frame_equal(a, b)
    queries = a.loc[a["kind"] == "query", "query_id"].tolist()
    docs = a.loc[a["kind"] == "doc", "doc_id"].tolist()
    assert len(queries) == 5 and len(docs) == 30 and len(set(docs)) == 30
    must = {d for q in queries for d in qrels[q]} | set(
        preds[preds["query_id"].isin(queries) & (preds["rank"] < 2)]["doc_id"]
    )
    assert must <= set(docs)
    # Documents that are some sampled query's candidate carry that pair; the random fill carries none.
    cand_docs = set(preds[preds["query_id"].isin(queries)]["doc_id"])
    with_pair = set(a.loc[(a["kind"] == "doc") & a["query_id"].notna(), "doc_id"])
    assert with_pair == cand_docs & set(docs)
    # Only the sampled queries' rows are read, never the whole run's.
    assert read == [queries, queries]
    other = ProjectionConfig(global_queries=5, global_top_k=2, global_docs=30, seed=7)
    assert (
        global_scope_points(scored, rows_of, qrels, corpus, vec, vec, other).points["query_id"].tolist()
        != a["query_id"].tolist()
    )


def test_fit_2d_is_deterministic_and_falls_back_to_pca_for_a_handful_of_points() -> None:
    x = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    x[3] = 0.0  # the no-residual ablation can give a zero vector: it must not turn into NaN
    cfg = ProjectionConfig(n_neighbors=15, n_epochs=50)
    xy, method = fit_2d(x, cfg)
    assert method == "umap" and xy.shape == (40, 2) and np.isfinite(xy).all()
    np.testing.assert_array_equal(xy, fit_2d(x, cfg)[0])
    small, method = fit_2d(x[:3], cfg)
    assert method == "pca" and small.shape == (3, 2) and np.isfinite(small).all()
    assert fit_2d(x[:1], cfg)[0].shape == (1, 2)


def test_config_rejects_bad_values() -> None:
    from rrra_core.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="n_neighbors"):
        ProjectionConfig(n_neighbors=1)
    with pytest.raises(ConfigError, match="min_dist"):
        ProjectionConfig(min_dist=2.0)


def test_scope_key_is_safe_for_files_and_distinguishes_ids() -> None:
    assert Scope().key == "global"
    odd = Scope("../x y/z")
    assert "/" not in odd.key and not odd.key.startswith(".")
    assert Scope("a b").key != Scope("a_b").key


# --- a real run ---------------------------------------------------------------------------


def test_query_projection_uses_the_runs_cached_encoder_and_adapter(run, isolated_home: Path, built: Built) -> None:
    import torch

    from rrra_core.adapter import load_adapter
    from rrra_core.data import load_dataset
    from rrra_core.retrieval.dense import encode_corpus, encode_queries
    from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig

    before = _cache_entries(isolated_home)
    assert before  # the run filled the cache
    stages: list[tuple[str, float]] = []
    proj = compute_projection(run, Scope(built.query), SMALL, progress=lambda s, f: stages.append((s, f)))
    # Nothing was encoded again: the corpus and the queries came from the run's cache.
    assert _cache_entries(isolated_home) == before
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and any("UMAP" in s for s, _ in stages)

    pts = proj.points
    assert (pts["kind"] == "query").sum() == 1 and pts.loc[pts["kind"] == "query", "query_id"].item() == built.query
    cands = pts[pts["kind"] == "candidate"]
    preds = pd.read_parquet(run.file("predictions.parquet"))
    mine = preds[preds["query_id"] == built.query].sort_values("rank")
    assert cands["doc_id"].tolist()[:10] == mine["doc_id"].tolist()[:10]
    np.testing.assert_allclose(
        cands["p_fn_given_neg"].to_numpy()[:10], mine["p_fn_given_neg"].to_numpy()[:10], rtol=1e-6
    )
    assert (pts["kind"] == "corrected").sum() == len(cands)
    assert np.isfinite(pts[["x", "y"]].to_numpy()).all()

    # The saved file is what load_projection returns, with its settings beside it.
    parquet, settings, _ = projection_paths(run, Scope(built.query))
    assert parquet.is_file() and settings.is_file()
    again = load_projection(run, Scope(built.query))
    pd.testing.assert_frame_equal(again.points.reset_index(drop=True), pts.reset_index(drop=True), check_dtype=False)
    assert again.config == SMALL and again.meta["method"] == "umap" and again.meta["predictions_sha256"]

    # a is the adapter's correction of c for this query (checked against the model directly).
    saved = json.loads(run.file("config.json").read_text())
    enc_cfg = EncoderConfig(**saved["encoder"])
    encoder = BiEncoder.from_pretrained(enc_cfg.model).eval()
    data = load_dataset("adi", "test")
    emb = encode_corpus(encoder, data.corpus, enc_cfg, progress=False)
    qids, qv = encode_queries(encoder, {built.query: data.queries[built.query]}, enc_cfg, cache=False)
    adapter, _ = load_adapter(run.file("adapter"))
    c = torch.as_tensor(emb.vectors[[emb.ids.index(d) for d in cands["doc_id"]]])
    with torch.no_grad():
        a = adapter.correct(torch.as_tensor(qv).expand(len(c), -1), c)
    scores = (
        torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(torch.as_tensor(qv[0]), dim=0)
    ).numpy()
    np.testing.assert_allclose(scores, cands["qa"].to_numpy(), atol=1e-4)  # QA = cos(q, a) as phase 2 recorded it


def test_projection_is_deterministic(run, built: Built) -> None:
    first = compute_projection(run, Scope(), SMALL).points
    second = compute_projection(run, Scope(), SMALL).points
    np.testing.assert_array_equal(first[["x", "y"]].to_numpy(), second[["x", "y"]].to_numpy())
    assert (first["kind"] == "query").sum() == 12 and (first["kind"] == "doc").sum() == 40


def test_unscored_query_is_a_user_error(run) -> None:
    from rrra_core.runtime.errors import UserError

    with pytest.raises(UserError, match="no scored candidates"):
        compute_projection(run, Scope("no-such-query"), SMALL)
    assert load_projection(run, Scope("no-such-query")) is None


def _script(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RRRA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "project.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO_ROOT,
    )


def test_script_writes_the_projection_and_its_progress(run, isolated_home: Path, built: Built) -> None:
    out = _script(
        "--run", built.run_id, f"--query={built.query}", "--top-k", "5", "--n-epochs", "30", home=isolated_home
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["points"] >= 11
    _, _, progress = projection_paths(run, Scope(built.query))
    assert json.loads(progress.read_text())["status"] == "done"
    assert load_projection(run, Scope(built.query)).config.top_k == 5


def test_script_help_and_one_line_errors(isolated_home: Path) -> None:
    out = _script("--help", home=isolated_home)
    assert out.returncode == 0 and "usage:" in out.stdout and "--global" in out.stdout
    out = _script("--run", "no-such-run", "--global", home=isolated_home)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert [ln for ln in out.stderr.splitlines() if ln.startswith("error:")] == [
        "error: run 'no-such-run' not found (no config.json)"
    ]
