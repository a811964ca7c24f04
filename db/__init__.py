"""RRRA Studio's annotation store: human relabels in SQLite, or PostgreSQL for teams.

Open it once, then call plain functions with a session::

    import db
    Session = db.session_factory(db.init_db())        # --db / $RRRA_DB_URL / <home>/.rrra/annotations.sqlite
    with Session() as session:
        db.ensure_dataset(session, "scifact")          # once per database: stores its query and doc ids
        db.save_judgment(session, "scifact", "1", "31715818", "relevant", "alice", model_view=row)
        db.undo_last(session, "scifact", "alice")
        db.adjudicate(session, "scifact", "1", "31715818", "relevant", "carol")  # settles a disagreement
        db.set_role(session, "bob@example.org", "adjudicator", granted_by="ann@example.org")  # team mode
        verdicts = db.decide(session, "scifact", policy="majority")   # {(query_id, doc_id): relevant}
        corrections = db.merge_labels(session, "scifact", base_qrels, policy="majority")  # LabelCorrections

Write functions commit; each is one transaction, except a large import: it writes short batches, then
publishes them in one (db/staging.py). Never imports torch or streamlit.
"""

from __future__ import annotations

from .adjudication import (
    Disagreement,
    adjudicate,
    adjudications,
    clear_adjudication,
    count_disagreements,
    disagreements,
)
from .agreement import AgreementResult, agreement
from .audit import AUDIT_ACTIONS, AuditEvent, list_actions, record_action
from .datasets import check_ids, ensure_dataset, get_dataset, list_datasets, register_dataset, require_dataset
from .engine import (
    DB_URL_ENV,
    check_integrity,
    default_db_path,
    display_url,
    make_engine,
    resolve_url,
    session_factory,
    write_transaction,
)
from .errors import AnnotationError
from .exports import (
    ARGILLA_MAPPING,
    ARGILLA_SETTINGS,
    LABEL_STUDIO_CONFIG,
    TRAINING_FORMATS,
    argilla_records,
    export_judgments,
    label_studio_tasks,
    training_examples,
    write_beir_qrels,
    write_confirmed_negatives,
    write_json,
    write_training_file,
    write_trec_qrels,
)
from .guidelines import GUIDELINES_MAX_CHARS, Guidelines, get_guidelines, save_guidelines
from .imports import (
    ImportSummary,
    import_judgments,
    import_label_studio,
    import_qrels,
    read_hard_negatives,
    read_qrels_file,
)
from .judgments import (
    annotator_counts,
    count_events,
    get_judgment,
    judged_pairs,
    list_by_query,
    list_events,
    list_judgments,
    save_judgment,
    save_judgments,
    undo_last,
)
from .merge import ADJUDICATION_RULE, MAJORITY_TIE_RULE, POLICIES, decide, merge_labels, parse_policy, policy_verdict
from .migrate import current_revision, head_revision, init_db, upgrade
from .models import (
    EVENT_ACTIONS,
    LABELS,
    MODEL_VIEW_FIELDS,
    Adjudication,
    Base,
    Judgment,
    JudgmentEvent,
    StoredDataset,
)
from .overview import OverviewCounts, count_judged_pairs, overview_counts
from .review import REVIEW_ORDERS, p_fn_given_neg, review_queue
from .roles import (
    PERMISSIONS,
    ROLES,
    Role,
    adjudicators,
    allowed,
    get_role,
    list_roles,
    parse_admins,
    person_key,
    revoke_role,
    set_role,
)

__all__ = [
    "check_integrity",
    # engine and schema
    "DB_URL_ENV",
    "default_db_path",
    "resolve_url",
    "display_url",
    "make_engine",
    "session_factory",
    "write_transaction",
    "init_db",
    "upgrade",
    "current_revision",
    "head_revision",
    # models
    "Base",
    "StoredDataset",
    "Judgment",
    "JudgmentEvent",
    "Adjudication",
    "LABELS",
    "EVENT_ACTIONS",
    "MODEL_VIEW_FIELDS",
    "AnnotationError",
    # datasets
    "register_dataset",
    "ensure_dataset",
    "get_dataset",
    "require_dataset",
    "list_datasets",
    "check_ids",
    # judgments
    "save_judgment",
    "save_judgments",
    "undo_last",
    "get_judgment",
    "list_by_query",
    "list_judgments",
    "list_events",
    "count_events",
    "annotator_counts",
    "judged_pairs",
    # review, agreement, merge
    "REVIEW_ORDERS",
    "review_queue",
    "p_fn_given_neg",
    "AgreementResult",
    "agreement",
    "OverviewCounts",
    "count_judged_pairs",
    "overview_counts",
    "POLICIES",
    "MAJORITY_TIE_RULE",
    "ADJUDICATION_RULE",
    "parse_policy",
    "policy_verdict",
    "decide",
    "merge_labels",
    # disagreements and their adjudication
    "Disagreement",
    "disagreements",
    "count_disagreements",
    "adjudicate",
    "clear_adjudication",
    "adjudications",
    # labelling guidelines
    "Guidelines",
    "GUIDELINES_MAX_CHARS",
    "get_guidelines",
    "save_guidelines",
    # team mode: roles and the record of who did what
    "ROLES",
    "PERMISSIONS",
    "Role",
    "allowed",
    "person_key",
    "parse_admins",
    "get_role",
    "set_role",
    "revoke_role",
    "list_roles",
    "adjudicators",
    "AUDIT_ACTIONS",
    "AuditEvent",
    "record_action",
    "list_actions",
    # exports and imports
    "TRAINING_FORMATS",
    "LABEL_STUDIO_CONFIG",
    "ARGILLA_SETTINGS",
    "ARGILLA_MAPPING",
    "write_beir_qrels",
    "write_trec_qrels",
    "write_confirmed_negatives",
    "training_examples",
    "write_training_file",
    "label_studio_tasks",
    "argilla_records",
    "write_json",
    "export_judgments",
    "ImportSummary",
    "read_qrels_file",
    "read_hard_negatives",
    "import_qrels",
    "import_judgments",
    "import_label_studio",
]
