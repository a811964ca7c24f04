"""scripts/annotations.py: help, a round trip through files, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import db
from rrra_core.data import load_dataset, read_tevatron
from rrra_core.runtime.paths import REPO_ROOT, demo_dataset_dir

SCRIPT = REPO_ROOT / "scripts" / "annotations.py"


def _run(*args: str, home: Path, db_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != db.DB_URL_ENV}
    env.update({"RRRA_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    if db_env is not None:
        env[db.DB_URL_ENV] = db_env
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT
    )


def _one_line_error(out: subprocess.CompletedProcess[str], needle: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], out.stderr


def test_help(isolated_home: Path) -> None:
    out = _run("--help", home=isolated_home)
    assert out.returncode == 0 and "usage:" in out.stdout
    for command in ("export", "import", "stats", "agreement", "upgrade"):
        assert command in out.stdout
    assert "--policy" in _run("export", "--help", home=isolated_home).stdout


def test_round_trip_through_the_command_line(backend: str, db_url: str, isolated_home: Path, tmp_path: Path) -> None:
    # SQLite through --db, PostgreSQL through $RRRA_DB_URL: both ways of choosing the database.
    where = {"db_env": db_url} if backend == "postgresql" else {}
    flags = [] if backend == "postgresql" else ["--db", db_url]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        out = _run(*flags, *args, home=isolated_home, **where)
        assert out.returncode == 0, out.stderr
        return out

    qrels_file = demo_dataset_dir("scifact") / "qrels" / "test.tsv"
    assert (
        "imported 339 judgments"
        in run("import", "--dataset", "scifact", "--format", "qrels", "--annotator", "beir", str(qrels_file)).stdout
    )

    engine = db.init_db(db_url)
    try:
        with db.session_factory(engine)() as session:
            data = load_dataset("scifact", "test")
            q = sorted(data.qrels)[0]
            pos = sorted(data.qrels[q])[0]
            db.save_judgments(
                session,
                "scifact",
                [{"query_id": q, "doc_id": pos, "label": "not_relevant", "annotator": who} for who in ("alice", "bob")],
            )
    finally:
        engine.dispose()

    out_tsv, out_tev = tmp_path / "corrected.tsv", tmp_path / "train.jsonl"
    run("export", "--dataset", "scifact", "--split", "test", "--format", "beir", "--out", str(out_tsv))
    run("export", "--dataset", "scifact", "--split", "test", "--format", "tevatron", "--out", str(out_tev))
    exported = out_tsv.read_text(encoding="utf-8").splitlines()
    assert len(exported) == 1 + 339 - 1 and f"{q}\t{pos}\t1" not in exported
    examples = read_tevatron(out_tev)
    by_q = {e.query_id: e for e in examples}
    if q in by_q:
        assert by_q[q].negatives[0].docid == pos

    stats = json.loads(run("stats", "--json").stdout)
    assert stats["scifact"]["annotators"]["alice"]["not_relevant"] == 1
    assert stats["scifact"]["events"] == 341
    agreement = json.loads(run("agreement", "--dataset", "scifact", "--json").stdout)
    assert agreement["method"] == "krippendorff_alpha" and agreement["items"] == 1
    assert "revision" in run("upgrade").stdout


def test_user_mistakes_are_one_line_errors_and_write_nothing(isolated_home: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    qrels_file = demo_dataset_dir("scifact") / "qrels" / "test.tsv"
    _one_line_error(
        _run("--db", url, "import", "--dataset", "scifact", "--format", "qrels", str(qrels_file), home=isolated_home),
        "--annotator",
    )
    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\n1\t31715818\t1\n1\tmissing-doc\t1\n", encoding="utf-8")
    _one_line_error(
        _run(
            "--db",
            url,
            "import",
            "--dataset",
            "scifact",
            "--format",
            "qrels",
            "--annotator",
            "x",
            str(bad),
            home=isolated_home,
        ),
        "unknown doc id 'missing-doc'",
    )
    _one_line_error(
        _run(
            "--db",
            url,
            "export",
            "--dataset",
            "scifact",
            "--format",
            "beir",
            "--out",
            str(tmp_path / "o.tsv"),
            "--policy",
            "loudest",
            home=isolated_home,
        ),
        "merge policy",
    )
    _one_line_error(
        _run("--db", url, "export", "--dataset", "nope", "--format", "beir", "--out", "x", home=isolated_home),
        "unknown dataset 'nope'",
    )
    _one_line_error(_run("--db", url, "export", "--format", "xml", home=isolated_home), "invalid choice")
    _one_line_error(_run("--db", "mysql://h/x", "stats", home=isolated_home), "unsupported database")
    _one_line_error(
        _run("stats", home=isolated_home, db_env="postgresql://nobody@127.0.0.1:1/none"),
        "cannot open the annotation database",
    )
    engine = db.init_db(url)
    try:
        with db.session_factory(engine)() as session:
            assert db.list_judgments(session) == [] and db.list_events(session) == []
    finally:
        engine.dispose()


def test_default_database_is_in_the_home_folder(isolated_home: Path) -> None:
    out = _run("upgrade", home=isolated_home)
    assert out.returncode == 0, out.stderr
    assert (isolated_home / ".rrra" / "annotations.sqlite").is_file()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_label_studio_export_from_predictions(db_url: str, isolated_home: Path, tmp_path: Path) -> None:
    data = load_dataset("scifact", "test")
    q = sorted(data.qrels)[0]
    rows = [
        {"query_id": q, "doc_id": d, "rank": r, "score": 1.0, "label": 0, "p_fn_given_neg": p}
        for r, (d, p) in enumerate(zip(sorted(data.corpus)[:3], (0.2, 0.9, 0.5)))
    ]
    preds = tmp_path / "predictions.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "tasks.json"
    res = _run(
        "--db",
        db_url,
        "export",
        "--dataset",
        "scifact",
        "--format",
        "label-studio",
        "--predictions",
        str(preds),
        "--run-id",
        "r9",
        "--out",
        str(out),
        home=isolated_home,
    )
    assert res.returncode == 0, res.stderr
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert [t["data"]["p_fn_given_neg"] for t in tasks] == [0.9, 0.5, 0.2]
    assert tasks[0]["predictions"][0]["model_version"] == "r9"


def write_damaged_store(path: Path) -> Path:
    """An SQLite store at ``path`` holding ADI judgments, with one page in the middle overwritten; returns the
    qrels file it imported (several pages of rows, so the damaged page is past the schema)."""
    url = f"sqlite:///{path}"
    engine = db.init_db(url)
    data = load_dataset("adi", "test")
    rows = [
        f"{q}\t{d}\t{i % 2}" for i, (q, d) in enumerate((q, d) for q in sorted(data.queries)[:6] for d in data.corpus)
    ]
    qrels = path.with_name(path.stem + "-qrels.tsv")
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    with db.session_factory(engine)() as s:
        db.ensure_dataset(s, "adi")
        db.import_qrels(s, "adi", qrels, "assessor")  # one transaction: several pages of rows, quickly
    engine.dispose()  # the last connection closes: the write-ahead log goes into the file itself
    raw = bytearray(path.read_bytes())
    page = 4096
    middle = (len(raw) // page // 2) * page  # a page in the middle of the file, past the schema
    raw[middle : middle + 200] = b"\xff" * 200
    path.write_bytes(bytes(raw))
    return qrels


def test_a_damaged_database_is_refused_by_every_command(isolated_home: Path, tmp_path: Path) -> None:
    """A damaged page: every subcommand says so in one line with the way to recover (README), before reading
    or writing; the export writes no partial file and the import (or upgrade) leaves the file as it was."""
    path = tmp_path / "store.sqlite"
    url = f"sqlite:///{path}"
    qrels = write_damaged_store(path)
    damaged = path.read_bytes()
    out_file = tmp_path / "out.tsv"
    for args in (
        ["stats"],
        ["export", "--dataset", "adi", "--format", "beir", "--out", str(out_file)],
        ["upgrade"],
        ["import", "--dataset", "adi", "--format", "qrels", "--annotator", "bob", str(qrels)],
    ):
        out = _run("--db", url, *args, home=isolated_home)
        _one_line_error(out, "is damaged")
        assert ".recover" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert path.read_bytes() == damaged, args
    assert not out_file.exists()


def test_a_damaged_header_is_named_with_the_way_to_recover(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    db.init_db(f"sqlite:///{path}").dispose()
    raw = bytearray(path.read_bytes())
    raw[:16] = b"\0" * 16  # SQLite's magic string: the file is no longer recognised as a database
    path.write_bytes(bytes(raw))
    with pytest.raises(db.AnnotationError, match=r"is damaged \(file is not a database\).*\.recover"):
        db.init_db(f"sqlite:///{path}")
