"""Human verdicts turned into label corrections (pure functions, no database).

A reviewer's verdict on a (query, doc) pair is the truth about that pair, not
its label. Training needs it in three places, and this module gives all three
from one input, so a retrain never carries the same verdict in several shapes:

- ``qrels``: the labels after the verdicts (a confirmed false negative becomes
  a positive; a positive judged irrelevant stops being one);
- ``confirmed_negatives``: pairs judged irrelevant. They are kept apart from
  the qrels (never written as relevance 0, which metric libraries drop) and
  stay eligible as hard negatives whatever the adapter says;
- ``verdicts``: every verdict, for the adapter's human-labelled training pairs.

The annotation store (``db``) only supplies the verdicts
(``{(query_id, doc_id): relevant}`` under a merge policy); the driver that
reads it hands a :class:`LabelCorrections` to the core.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

__all__ = ["LabelCorrections", "Verdicts", "apply_verdicts"]

#: ``{(query_id, doc_id): relevant}``: one decided verdict per pair.
Verdicts = Mapping[tuple[str, str], bool]


@dataclass(frozen=True)
class LabelCorrections:
    """Corrected qrels, confirmed negatives and the verdicts they came from."""

    qrels: dict[str, dict[str, int]]
    confirmed_negatives: dict[str, set[str]] = field(default_factory=dict)
    verdicts: dict[tuple[str, str], bool] = field(default_factory=dict)

    @property
    def human_relevant(self) -> dict[str, set[str]]:
        """Per query, the docs a human confirmed relevant: never to be sampled as negatives."""
        out: dict[str, set[str]] = {}
        for (q, d), relevant in self.verdicts.items():
            if relevant:
                out.setdefault(q, set()).add(d)
        return out

    def added_positives(self, base_qrels: Mapping[str, Mapping[str, int]]) -> int:
        """How many confirmed-relevant pairs were not positives in ``base_qrels`` (false negatives fixed)."""
        return sum(1 for (q, d), rel in self.verdicts.items() if rel and base_qrels.get(q, {}).get(d, 0) <= 0)

    def summary(self, base_qrels: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
        """Counts a retrain records: verdicts used, false negatives added, confirmed negatives."""
        return {
            "judgments": len(self.verdicts),
            "false_negatives_added": self.added_positives(base_qrels),
            "confirmed_negatives": sum(len(v) for v in self.confirmed_negatives.values()),
        }


def apply_verdicts(
    base_qrels: Mapping[str, Mapping[str, int]],
    verdicts: Verdicts,
    *,
    query_ids: Collection[str] | None = None,
) -> LabelCorrections:
    """``base_qrels`` corrected by the ``verdicts`` on ``query_ids`` (default: the qrels' queries).

    ``base_qrels`` is not modified, and its queries outside the scope are kept
    as they are. A verdict on a query outside the scope is ignored; the scope
    may name queries with no positive yet (a verdict can give them one). A
    query left without a positive is dropped from the corrected qrels (qrels
    hold positives only); its confirmed negatives are kept.
    """
    scope = set(query_ids) if query_ids is not None else set(base_qrels)
    qrels = {q: dict(docs) for q, docs in base_qrels.items()}
    confirmed: dict[str, set[str]] = {}
    used: dict[tuple[str, str], bool] = {}
    for (q, d), relevant in sorted(verdicts.items()):
        if q not in scope:
            continue
        used[(q, d)] = bool(relevant)
        if relevant:
            docs = qrels.setdefault(q, {})
            if docs.get(d, 0) <= 0:
                docs[d] = 1
        else:
            qrels.get(q, {}).pop(d, None)
            confirmed.setdefault(q, set()).add(d)
    qrels = {q: docs for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    return LabelCorrections(qrels=qrels, confirmed_negatives=confirmed, verdicts=used)
