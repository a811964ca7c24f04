from __future__ import annotations

import json

import numpy as np
import pytest

from rrra_core.retrieval.index import DenseIndex
from rrra_core.runtime.errors import ConfigError, DataError, UserError
from rrra_core.speed.measure import recall_at_k


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ids_for(n: int) -> list[str]:
    return [f"doc-{i}" for i in range(n)]


@pytest.fixture(scope="module")
def random_20k() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    docs = unit_rows(20_000, 64, seed=1)
    queries = unit_rows(200, 64, seed=2)
    exact = DenseIndex.build(docs, ids_for(len(docs)), kind="flat")
    _, exact_rows = exact.search_rows(queries, 10)
    return docs, queries, exact_rows


def test_flat_search_matches_numpy_brute_force():
    docs, queries = unit_rows(500, 16, 0), unit_rows(20, 16, 9)
    ids = ids_for(500)
    index = DenseIndex.build(docs, ids)  # auto -> flat for small corpora
    assert index.kind == "flat"
    scores, found = index.search(queries, 7)
    sims = queries @ docs.T
    expected_rows = np.argsort(-sims, axis=1)[:, :7]
    assert found == [[ids[j] for j in row] for row in expected_rows]
    np.testing.assert_allclose(scores, np.take_along_axis(sims, expected_rows, axis=1), rtol=1e-5, atol=1e-6)


def test_k_is_clipped_to_corpus_size_and_run_is_id_keyed():
    docs = unit_rows(5, 8, 0)
    index = DenseIndex.build(docs, ["a", "b", "c", "d", "e"])
    scores, found = index.search(unit_rows(2, 8, 1), 50)
    assert scores.shape == (2, 5) and all(len(r) == 5 for r in found)
    run = index.search_run(["q1", "q2"], docs[:2], 3)
    assert list(run) == ["q1", "q2"]
    assert next(iter(sorted(run["q1"].items(), key=lambda kv: -kv[1])))[0] == "a"
    assert run["q2"]["b"] == pytest.approx(1.0, abs=1e-5)


def test_save_load_round_trip(tmp_path):
    docs, queries = unit_rows(300, 12, 3), unit_rows(10, 12, 4)
    ids = [f"id é {i}" for i in range(300)]  # non-ASCII and inner spaces survive
    for kind in ("flat", "hnsw", "ivf"):
        index = DenseIndex.build(docs, ids, kind=kind, nlist=4, nprobe=4)
        folder = tmp_path / kind
        index.save(folder)
        index.save(folder)  # overwriting an existing folder works
        loaded = DenseIndex.load(folder)
        assert loaded.kind == kind and loaded.doc_ids == ids and loaded.params == index.params
        s1, i1 = index.search(queries, 5)
        s2, i2 = loaded.search(queries, 5)
        assert i1 == i2
        np.testing.assert_array_equal(s1, s2)
        meta = json.loads((folder / "index.json").read_text())
        assert (meta["kind"], meta["dim"], meta["count"]) == (kind, 12, 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat", "hnsw", "ivf"]  # no temp leftovers


def test_load_rejects_inconsistent_or_half_written_folders(tmp_path):
    index = DenseIndex.build(unit_rows(10, 4, 0), ids_for(10))
    folder = index.save(tmp_path / "idx")
    (folder / "doc_ids.txt").write_text("\n".join(ids_for(9)) + "\n")
    with pytest.raises(DataError, match="count=10"):
        DenseIndex.load(folder)
    index.save(folder)
    (folder / "index.json").unlink()  # index.json is written last: without it, nothing loads
    with pytest.raises(DataError, match="missing index.json"):
        DenseIndex.load(folder)


def test_bad_inputs_raise_user_errors():
    docs = unit_rows(4, 8, 0)
    with pytest.raises(UserError, match="duplicate id 'a'"):
        DenseIndex.build(docs, ["a", "b", "a", "c"])
    with pytest.raises(UserError, match="3 ids for 4"):
        DenseIndex.build(docs, ["a", "b", "c"])
    with pytest.raises(UserError, match="line-break"):
        DenseIndex.build(docs, ["a", "b\nx", "c", "d"])
    with pytest.raises(ConfigError, match="2-D"):
        DenseIndex.build(docs[0], ["a"])
    bad = docs.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        DenseIndex.build(bad, ["a", "b", "c", "d"])
    with pytest.raises(ConfigError, match="L2-normalised"):
        DenseIndex.build(docs * 3, ["a", "b", "c", "d"])
    with pytest.raises(ConfigError, match="unknown index kind"):
        DenseIndex.build(docs, ["a", "b", "c", "d"], kind="lsh")
    index = DenseIndex.build(docs, ["a", "b", "c", "d"])
    with pytest.raises(ConfigError, match="dimension 5"):
        index.search(unit_rows(2, 5, 0), 2)
    try:  # messages are one line, fit for a CLI
        DenseIndex.build(docs, ["a", "a", "b", "c"])
    except UserError as err:
        assert "\n" not in str(err)


def test_hnsw_recall_vs_exact(random_20k):
    docs, queries, exact_rows = random_20k
    index = DenseIndex.build(docs, ids_for(len(docs)), kind="hnsw")
    _, approx_rows = index.search_rows(queries, 10)
    assert recall_at_k(approx_rows, exact_rows, 10) >= 0.9


def test_ivf_recall_vs_exact_on_random_vectors(random_20k):
    # Uniform random vectors have no cluster structure, IVF's worst case, so
    # probe a larger share of the lists than the default.
    docs, queries, exact_rows = random_20k
    index = DenseIndex.build(docs, ids_for(len(docs)), kind="ivf", nlist=64, nprobe=48)
    _, approx_rows = index.search_rows(queries, 10)
    assert recall_at_k(approx_rows, exact_rows, 10) >= 0.9


def test_ivf_defaults_keep_recall_high_on_clustered_vectors():
    rng = np.random.default_rng(5)
    centres = unit_rows(100, 64, seed=6)
    x = centres[rng.integers(0, 100, 20_000)] + 0.08 * rng.standard_normal((20_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(20_000, 200, replace=False)] + 0.05 * rng.standard_normal((200, 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = ids_for(20_000)
    _, exact_rows = DenseIndex.build(x, ids, kind="flat").search_rows(q, 10)
    _, approx_rows = DenseIndex.build(x, ids, kind="ivf").search_rows(q, 10)
    assert recall_at_k(approx_rows, exact_rows, 10) >= 0.9


def test_search_rows_matches_search_and_restores_faiss_threads():
    import faiss

    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = DenseIndex.build(x, [f"d{i}" for i in range(200)], kind="flat")
    before = faiss.omp_get_max_threads()
    scores, rows = index.search_rows(x[:3], 10, threads=1)
    assert faiss.omp_get_max_threads() == before
    s2, ids = index.search(x[:3], 10)
    assert np.array_equal(scores, s2)
    assert [[index.doc_ids[r] for r in row] for row in rows.tolist()] == ids
