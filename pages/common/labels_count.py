"""Counts that two places on screen show, defined once so they can never disagree.

* :func:`labelled_positives`: a query's labelled positives as the Hard negatives
  page lists them, the same pairs its rows badge "labelled positive": the
  dataset's qrels, and the run's own candidates with a positive label (a
  retrained run's labels carry the verdicts that turned a negative positive;
  the dataset's qrels file does not).
* :func:`judged_false_negatives`: the run's labelled negatives with the
  verdict the store decides for them, the one source of the Overview's "False
  negatives confirmed" and the calibration's "Judged negatives" and "Judged
  false negatives".
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from rrra_core.review.calibration import judged_negatives

__all__ = ["labelled_positives", "decided_rows", "judged_false_negatives"]


def labelled_positives(qrels: Mapping[str, int], candidates: pd.DataFrame) -> list[str]:
    """The query's labelled positives: its qrels' (in their order), then its candidates labelled positive (by rank).

    ``qrels`` is the query's ``{doc_id: grade}`` from the dataset; ``candidates``
    the run's rows for the query (``doc_id``, ``label``, optionally ``rank``).
    """
    out = [str(d) for d, grade in qrels.items() if grade > 0]
    if len(candidates):
        rows = candidates[candidates["label"] > 0]
        if "rank" in rows.columns:
            rows = rows.sort_values("rank", kind="stable")
        for d in map(str, rows["doc_id"]):
            if d not in out:
                out.append(d)
    return out


def decided_rows(decided: Mapping[tuple[str, str], bool]) -> pd.DataFrame:
    """The store's decided verdicts (``db.decide``) as rows ``query_id``, ``doc_id``, ``label``, one per pair."""
    return pd.DataFrame(
        [(q, d, "relevant" if relevant else "not_relevant") for (q, d), relevant in decided.items()],
        columns=["query_id", "doc_id", "label"],
    )


def judged_false_negatives(preds: pd.DataFrame, decided: Mapping[tuple[str, str], bool]) -> pd.DataFrame:
    """The run's labelled negatives with a decided verdict: ``query_id``, ``doc_id``, ``p_fn_given_neg``, ``verdict``.

    ``decided`` is ``db.decide(session, dataset, "majority")``: more relevant
    than not-relevant votes (``unsure`` abstains, a tie decides nothing), an
    adjudication overruling the votes. ``verdict`` is true for a false negative.
    """
    return judged_negatives(preds, decided_rows(decided))
