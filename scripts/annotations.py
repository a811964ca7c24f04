r"""The annotation store from the command line: export, import, stats, agreement, upgrade.

Examples:
    python scripts/annotations.py stats
    python scripts/annotations.py export --dataset scifact --split train --format beir --out train.tsv --policy majority
    python scripts/annotations.py export --dataset scifact --format tevatron --out train.jsonl \
        --hard-negatives runs/<id>/negatives.jsonl
    python scripts/annotations.py export --dataset scifact --format label-studio \
        --predictions runs/<id>/predictions.parquet --out tasks.json   # the review queue's next 500
    python scripts/annotations.py export --dataset scifact --format label-studio --select suspects \
        --threshold 0.8 --limit 0 --predictions runs/<id>/predictions.parquet --out suspects.json
    python scripts/annotations.py export --dataset scifact --format argilla --select judged --out judged.json
    python scripts/annotations.py import --dataset scifact --format qrels --annotator trec-assessor extra.tsv
    python scripts/annotations.py agreement --dataset scifact
    python scripts/annotations.py --db postgresql://user@host/rrra upgrade

The database is --db URL, else $RRRA_DB_URL, else <home>/.rrra/annotations.sqlite.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    from db.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    from rrra_core.runtime.cli import run_main

    sys.exit(run_main(main))
