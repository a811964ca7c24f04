"""Human judgments flow from the annotation store into training labels, end to end: one LabelCorrections."""

from __future__ import annotations

from pathlib import Path

import db
from rrra_core.adapter import FN, TN, TP, LabelConfig, build_adapter_pairs
from rrra_core.data import load_dataset


def test_store_judgments_become_adapter_classes_and_corrected_qrels(tmp_path: Path) -> None:
    engine = db.init_db(f"sqlite:///{tmp_path / 'ann.sqlite'}")
    Session = db.session_factory(engine)
    data = load_dataset("adi", "test")
    q = sorted(data.qrels)[0]
    positives = set(data.qrels[q])
    unlabeled = [d for d in sorted(data.corpus) if d not in positives][:2]
    with Session() as s:
        db.ensure_dataset(s, "adi")
        db.save_judgment(s, "adi", q, unlabeled[0], "relevant", "ana")
        db.save_judgment(s, "adi", q, unlabeled[1], "not_relevant", "ana")
        corrections = db.merge_labels(s, "adi", data.qrels, "majority")
    corrected = corrections.qrels

    assert unlabeled[0] in corrected[q] and unlabeled[1] not in corrected[q]
    assert corrections.confirmed_negatives == {q: {unlabeled[1]}}
    assert corrections.verdicts == {(q, unlabeled[0]): True, (q, unlabeled[1]): False}
    assert corrections.human_relevant == {q: {unlabeled[0]}}
    candidates = {qq: [(d, 1.0 - i / 100) for i, d in enumerate(sorted(data.corpus)[:20])] for qq in data.qrels}
    cfg = LabelConfig(mu=0.0, fp_fraction=0.0, top_k=20)
    # Before the merge the confirmed-relevant doc is a false negative; after it, a true positive.
    before = build_adapter_pairs(data.qrels, candidates, cfg, verdicts=corrections.verdicts)
    after = build_adapter_pairs(corrected, candidates, cfg, verdicts=corrections.verdicts)

    def cls(pairs, d):
        return int(
            pairs.targets[
                [i for i, (qq, dd) in enumerate(zip(pairs.query_ids, pairs.doc_ids)) if qq == q and dd == d][0]
            ]
        )

    assert cls(before, unlabeled[0]) == FN and cls(after, unlabeled[0]) == TP
    assert cls(before, unlabeled[1]) == TN and cls(after, unlabeled[1]) == TN
