"""scripts/bench_review.py --quick: runs in seconds, writes headed results files, and resumes from them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from rrra_core.runtime.paths import REPO_ROOT


def _driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_review", REPO_ROOT / "scripts" / "bench_review.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_summary_and_resumes(tmp_path: Path) -> None:
    driver = _driver()
    out = tmp_path / "review_quick"
    argv = ["quick", "--out", str(out), "--seeds", "0", "1"]
    driver.main(argv)
    data = json.loads(out.with_suffix(".json").read_text())
    summary = data["summary"]
    assert set(summary["found"]) == set(driver.ORDERS)
    assert summary["found"]["learnt"] > summary["found"]["random"]
    assert len(data["results"]) == 2 * len(driver.ORDERS)
    md = out.with_suffix(".md").read_text()
    assert md.startswith("`python scripts/bench_review.py quick --out")
    # Calibration before (0) and after the refits, per seed, from a replay of the learnt session.
    cal = data["calibration"]
    assert cal["budgets"] == [0, 100] and set(cal["seeds"]) == {"0", "1"}
    assert all(c["same_session"] for c in cal["seeds"].values())
    assert cal["ece"]["pool/adapter"]["0"] is not None and cal["ece"]["pool/learnt"]["0"] is None
    assert "## Calibration before and after the refits" in md
    # A rerun with the same settings finds every (order, seed) done and reruns none of them.
    data["results"]["learnt/0"]["found"]["25"] = -1
    out.with_suffix(".json").write_text(json.dumps(data))
    driver.main(argv)
    assert json.loads(out.with_suffix(".json").read_text())["results"]["learnt/0"]["found"]["25"] == -1


def test_split_is_a_fixed_half() -> None:
    driver = _driver()
    ids = [f"q{i}" for i in range(400)]
    dev = [driver.is_dev(q) for q in ids]
    assert 150 < sum(dev) < 250 and dev == [driver.is_dev(q) for q in ids]


def _file(found: dict[str, dict[str, float]]) -> dict:
    table = {o: {b: [v, 0.0] for b, v in c.items()} for o, c in found.items()}
    return {"settings": {"seeds": [0, 1, 2]}, "table": table}


def test_summary_compares_learnt_with_the_best_static_order_per_budget() -> None:
    driver = _driver()
    files = {
        "squad": _file({"bandit": {"100": 30, "200": 60, "400": 90}, "retriever": {"100": 20, "200": 25, "400": 40},
                        "adapter": {"100": 22, "200": 30, "400": 50}}),
        "sparse": _file({"bandit": {"100": 9, "200": 15, "400": 20}, "adapter": {"100": 10, "200": 15, "400": 19},
                         "bm25": {"100": 2, "200": 4, "400": 8}}),
    }  # fmt: skip
    s = driver.summary_table(files, "bandit", (100, 200, 400))
    assert s["collections"]["squad"]["best_static"]["200"] == {"order": "adapter", "found": 30, "ratio": 2.0}
    assert s["worst_ratio"] == 0.9  # sparse at 100: 9 / 10
    assert s["mean_ratio_at_200"] == 1.5 and s["squad_over_retriever_at_200"] == 2.4


def test_run_names_follow_the_planting() -> None:
    spec = importlib.util.spec_from_file_location("make_review_runs", REPO_ROOT / "scripts" / "make_review_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    driver = _driver()
    for name, coll in driver.COLLECTIONS.items():
        if not coll.make:  # the scale collection: its run comes from scripts/build_scale.py
            continue
        args = module.build_parser().parse_args(coll.make.split())
        assert module.review_run_prefix(args.dataset, args.planting, args.rate) == coll.prefix, name


def test_dev_variants_run_by_name_and_the_dev_summary_ranks_them(tmp_path: Path) -> None:
    """``--orders bandit:<variant>`` runs a named dev variant; dev-summary scores every adaptive order tried."""
    driver = _driver()
    folder = tmp_path / "dev"
    driver.main(["quick", "--split", "dev", "--out", str(folder / "quick"), "--seeds", "0", "--no-calibration",
                 "--orders", "adapter", "closeness", "bandit", "bandit:former"])  # fmt: skip
    driver.main(
        [
            "quick",
            "--split",
            "dev",
            "--out",
            str(folder / "quick"),
            "--seeds",
            "0",
            "--no-calibration",
            "--orders",
            "bandit:fp_w10",
        ]
    )  # fmt: skip: a second invocation adds to the same file
    out = driver.dev_summary(folder, ["quick"], tmp_path / "summary", "python scripts/bench_review.py dev-summary")
    assert set(out["variants"]) == {"bandit", "bandit:former", "bandit:fp_w10"}
    assert out["settings"]["bandit:fp_w10"]["window"] == 10 and out["settings"]["bandit"] is None
    assert "| bandit:former |" in (tmp_path / "summary.md").read_text()
    try:
        driver.order_choice("bandit:nonesuch")
    except Exception as err:  # argparse's type error names the variants there are
        assert "fp_w10" in str(err)
    else:
        raise AssertionError("an unknown variant was accepted")
