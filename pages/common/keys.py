"""Every session-state key the app uses, named once.

A widget with ``key=K`` keeps its value in ``st.session_state[K]``, so widget
keys are session-state keys too: pages read them back, hand values to other
pages through them, and the tests find widgets by them. The values are part of
that contract and never change. Keys that depend on a row, a job or a result
file are built by the small functions of each section.
``tests/app/test_app_hygiene.py`` fails on a key written as a literal anywhere else.
"""

from __future__ import annotations

# --- the sidebar, and what every page shares -------------------------------------

DATASET = "sb_dataset"
RUN = "sb_run"
RUN_CHOICE = "_sb_run_choice"  # the run people chose; survives new runs appearing in the list (never auto-switches)
ANNOTATOR = "sb_annotator"
SPLIT = "sb_split"
SELECTION = "_selection"  # the sidebar's choice on this rerun (state.remember)
QUERY = "browser_query"  # the query the browser shows; other pages set it to jump there
THRESHOLD = "fn_threshold"  # P(FN|neg) at or above which a negative is "suspected"
FLASH = "_flash"  # a judgment's message, shown once after the rerun its button triggers


def job_cancel(job_id: str) -> str:
    """The Cancel button of a background job (a map, a retrain)."""
    return f"cancel_{job_id}"


def chart(name: str) -> str:
    """A chart's default key, from its download name."""
    return f"chart_{name}"


def csv(name: str) -> str:
    """A CSV download button's default key, from its file name."""
    return f"csv_{name}"


# --- Overview ----------------------------------------------------------------------

TOP_SUSPECTS = "top_suspects"  # the table of top suspected false negatives (a selected row opens its query)
DEMO_BUILD = "build_demo"
DEMO_CANCEL = "cancel_demo"
RELIABILITY_CHART = "overview_reliability"  # the reliability diagram of P(FN|neg) against the judgments

# --- Hard negatives (the browser) --------------------------------------------------

BROWSER_SEARCH = "browser_search"
BROWSER_QUERY_PICKER = "_browser_query_widget"  # the picker's own copy of QUERY
BROWSER_QUERY_PREV = "q_prev"
BROWSER_QUERY_NEXT = "q_next"
BROWSER_THRESHOLD = "_browser_threshold"  # the slider's own copy of THRESHOLD
BROWSER_PAGE_SIZE = "browser_page_size"
BROWSER_FOCUS = "browser_focus"  # index of the focused candidate in the query's list
BROWSER_PAGE = "browser_page"
BROWSER_FOCUS_PREV = "focus_prev"
BROWSER_FOCUS_NEXT = "focus_next"
BROWSER_PAGE_PREV = "page_prev"
BROWSER_PAGE_NEXT = "page_next"
BROWSER_UNDO = "browser_undo"


def browser_label(label: str, row: int) -> str:
    """A label button of the candidate at ``row`` in the query's list."""
    return f"lab_{label}_{row}"


def browser_focus_label(label: str) -> str:
    """A label button of the focused candidate (the one with the keyboard shortcut)."""
    return f"focus_{label}"


# --- Links, the annotator's name, the split that follows the run (issue 16, items 1, 2 and 5) ---

URL_RESTORED = "_url_restored"  # this session already took run, query and annotator from its first URL
SPLIT_FOR = "_sb_split_for"  # (dataset, run) the split was last set for: choosing another run sets the run's split
ANNOTATOR_PROMPT = "annotator_prompt"  # "who is labelling?" on the labelling pages; copied into ANNOTATOR
BROWSER_SHOW_RUN_SPLIT = "browser_show_run_split"  # switches the sidebar's split to the one the run scored
BROWSER_FOCUSED_ROW = "browser_focused_row"  # the focused candidate's container (styled and scrolled into view)


# --- Review queue --------------------------------------------------------------------

REVIEW_THRESHOLD = "_review_threshold"  # the slider's own copy of THRESHOLD
REVIEW_ORDER = "review_order"
REVIEW_SKIPPED = "review_skipped"  # pairs skipped in this browser session
REVIEW_SKIP = "review_skip"
REVIEW_UNDO = "review_undo"
REVIEW_REFIT_EVERY = "review_refit_every"  # judgments between two automatic refits of the learnt order
REVIEW_CURRENT = "_review_current"  # (run, query, doc, queue version) on screen: a refit never swaps it away
REVIEW_HISTORY = "_review_history"  # this session's review-page verdicts, oldest first: [(query, doc, label)]
REVIEW_REFIT_LAUNCHED = "_review_refit_launched"  # {run: judged count} at this session's last refit launch
REVIEW_FOUND_CHART = "review_found_chart"


def review_label(label: str) -> str:
    return f"review_{label}"


# --- Embedding map -------------------------------------------------------------------

MAP_SCOPE = "map_scope"
MAP_QUERY_PICKER = "_map_query"  # the picker's own copy of QUERY
MAP_COLOUR = "map_colour"
MAP_ARROWS = "map_arrows"
MAP_CHART = "map_chart"
MAP_PICKED = "map_picked"
MAP_LAST_EVENT = "_map_last_event"  # the chart selection last copied into MAP_PICKED
MAP_LAUNCHED = "_map_launched"  # job ids this session already started on its own (never loop on a failing job)
MAP_COMPUTE = "map_compute"
MAP_CSV = "map_csv"


def map_label(label: str, row: int) -> str:
    """A label button of the selected pair at ``row`` of the list under the map."""
    return f"map_lab_{label}_{row}"


# --- Training dynamics -----------------------------------------------------------------

DYN_RUN = "dyn_run"
DYN_SMOOTH = "dyn_smooth"
DYN_EPOCH_METRICS = "dyn_epoch_metrics"
DYN_EPOCH_FOR = "_dyn_epoch_for"  # the run DYN_EPOCH_METRICS holds the defaults of
DYN_GRAD_RUNS = "dyn_grad_runs"
DYN_GRAD_FOR = "_dyn_grad_for"  # the run DYN_GRAD_RUNS holds the defaults of
DYN_GRAD_KIND = "dyn_grad_kind"
DYN_GRAD_UNIT = "dyn_grad_unit"
DYN_GRAD_BUCKETS = "dyn_grad_buckets"
DYN_GRAD_STAT = "dyn_grad_stat"
DYN_LOSS_CHART = "loss_chart"
DYN_LR_CHART = "lr_chart"
DYN_STEPS_CSV = "csv_steps"
DYN_EPOCH_CHART = "epoch_chart"
DYN_EPOCH_TABLE = "epoch_table"
DYN_EPOCH_CSV = "csv_epochs"
DYN_FINAL_TABLE = "final_table"
DYN_FINAL_CSV = "csv_final"
DYN_GRAD_BOX = "grad_box"
DYN_GRAD_SUMMARY = "grad_summary"
DYN_GRAD_SUMMARY_CSV = "csv_grad_summary"
DYN_GRAD_OVER = "grad_over"
DYN_GRAD_OVER_CSV = "csv_grad_over"

# --- Ablations & baselines ---------------------------------------------------------------

BENCH_FILE = "bench_file"
# Widgets whose options depend on the result file: keyed per file (:func:`for_file`).
BENCH_METRIC = "bench_metric"
BENCH_MEASURE = "bench_ablation_measure"
BENCH_SEED = "bench_curve_seed"
BENCH_SCORES = "bench_curve_scores"
BENCH_HITL_METRIC = "bench_hitl_metric"
BENCH_METHODS_TABLE = "bench_methods_table"
BENCH_METHODS_CSV = "csv_methods"
BENCH_METHODS_CHART = "chart_methods"
BENCH_ABLATION_TABLE = "bench_ablation_table"
BENCH_ABLATION_CSV = "csv_ablations"
BENCH_ABLATION_CHART = "chart_ablations"
BENCH_DETECTION_TABLE = "bench_detection_table"
BENCH_DETECTION_CSV = "csv_detection"
BENCH_PR_CHART = "chart_pr"
BENCH_ROC_CHART = "chart_roc"
BENCH_CURVES_CSV = "csv_curves"
BENCH_HITL_TABLE = "bench_hitl_table"
BENCH_HITL_CSV = "csv_hitl"
BENCH_HITL_CHART = "chart_hitl"
BENCH_HITL_FILE = "bench_hitl_file"  # which hitl_*.json the curve reads
BENCH_HITL_CURVE_CHART = "chart_hitl_curve"
BENCH_HITL_CURVE_TABLE = "bench_hitl_curve_table"
BENCH_HITL_CURVE_CSV = "csv_hitl_curve"
BENCH_FAIR_FILE = "bench_fair_file"  # which fair_*.json the Fair comparison tab reads
BENCH_FAIR_METHODS = "bench_fair_methods"
BENCH_FAIR_METHODS_CSV = "csv_fair_methods"
BENCH_FAIR_TESTS = "bench_fair_tests"
BENCH_FAIR_TUNING = "bench_fair_tuning"
BENCH_FAIR_TUNING_CSV = "csv_fair_tuning"


def for_file(key: str, stem: str) -> str:
    """``key`` for one result file, so switching files never leaves a choice the new file's options lack."""
    return f"{key}_{stem}"


# --- Compare runs ------------------------------------------------------------------------

CMP_RUN_A = "cmp_a"
CMP_RUN_B = "cmp_b"
CMP_VARIANT_A = "cmp_variant_a"
CMP_VARIANT_B = "cmp_variant_b"
CMP_VARIANT_A_FOR = "_cmp_variant_a_for"  # the run CMP_VARIANT_A holds the default of
CMP_VARIANT_B_FOR = "_cmp_variant_b_for"
CMP_METRIC = "cmp_metric"
CMP_THRESHOLD = "cmp_threshold"
CMP_TOP_N = "cmp_top_n"
CMP_METRICS_TABLE = "cmp_metrics"
CMP_METRICS_CSV = "csv_cmp_metrics"
CMP_METRICS_CHART = "cmp_metrics_chart"
CMP_CONFIG_DIFF = "cmp_config_diff"
CMP_CONFIG_CSV = "csv_cmp_config"
CMP_SCATTER = "cmp_scatter"
CMP_DELTAS = "cmp_deltas"
CMP_HELPED = "cmp_helped"
CMP_HELPED_CSV = "csv_cmp_helped"
CMP_HURT = "cmp_hurt"
CMP_HURT_CSV = "csv_cmp_hurt"
CMP_ALL_CSV = "csv_cmp_all"


def per_query_start(side: str) -> str:
    """The button that computes run ``side``'s (A or B) per-query results."""
    return f"per_query_{side}"


def per_query_cancel(side: str) -> str:
    return f"cancel_per_query_{side}"


# --- Retrain -------------------------------------------------------------------------------

RETRAIN_RUN_NAME = "retrain_run_name"
RETRAIN_RUN_NAME_DEFAULT = "retrain_run_name_default"  # the default last put in RETRAIN_RUN_NAME
RETRAIN_FLASH = "_retrain_flash"  # the last launch's message, shown once after the rerun
# Runs A and B that Compare runs opens with after someone presses Compare on a finished retrain.
RETRAIN_COMPARE_A = "compare_run_a"
RETRAIN_COMPARE_B = "compare_run_b"


def retrain_resume(job_id: str) -> str:
    return f"resume_{job_id}"


def retrain_compare(job_id: str) -> str:
    return f"compare_{job_id}"


def retrain_open(job_id: str) -> str:
    """The button that switches the sidebar to a finished retrain's new run."""
    return f"open_{job_id}"


# --- New project, exports, guidelines, bulk labelling (issue 16, items 3 and 7) ----------

NP_SOURCE = "np_source"  # where the data is: a folder, a training file, or an upload
NP_FOLDER = "np_folder"
NP_TRAINING_FILE = "np_training_file"
NP_UPLOAD = "np_upload"
NP_NAME = "np_name"  # the dataset's folder name under <home>/datasets (uploads, converted files)
NP_REPLACE = "np_replace"  # replace the dataset of that name under <home>/datasets, whole folder (issue 25)
NP_CHECK = "np_check"
NP_CHECKED = "_np_checked"  # (folder, DatasetSummary) of the last successful check
NP_ERROR = "_np_error"  # the last check's one-line error
NP_MODEL_KIND = "np_model_kind"
NP_MODEL_FOLDER = "np_model_folder"
NP_SPLIT = "np_split"
NP_MAX_QUERIES = "np_max_queries"
NP_RUN_NAME = "np_run_name"
NP_BUILD = "np_build"
NP_CANCEL = "np_cancel"
NP_OPEN = "np_open"
EXPORT_FORMAT = "export_format"
EXPORT_POLICY = "export_policy"
EXPORT_DOWNLOAD = "export_download"
GUIDELINES_TEXT = "guidelines_text"
GUIDELINES_SAVE = "guidelines_save"
GUIDELINES_FOR = "_guidelines_for"  # the dataset whose text GUIDELINES_TEXT holds
BULK_PICK = "bulk_pick"
BULK_VERDICT = "bulk_verdict"
BULK_APPLY = "bulk_apply"


# --- Disagreements and adjudication; the map's query stars (issue 16, items 4 and 6) -------

DIS_SHOW_SETTLED = "dis_show_settled"  # list the adjudicated pairs too, not only the open ones
MAP_ALL_STARS = "map_all_stars"  # the global map draws every sampled query's star, not only a few


def dis_verdict(label: str, pair: str) -> str:
    """The button that records ``label`` as the adjudicated verdict of one pair (``pair``: a short hash)."""
    return f"dis_{label}_{pair}"


def dis_note(pair: str) -> str:
    """The adjudication note typed for one pair."""
    return f"dis_note_{pair}"


def dis_reopen(pair: str) -> str:
    """The button that removes one pair's adjudication, reopening it."""
    return f"dis_reopen_{pair}"


# --- links, the sidebar's run, the Hard negatives page's scroll (issue 25, items 11–15) -------

APP_URL = "_app_url"  # the app's own address, without the shown page's path (links.remember_app_url)
LINK_QUERY = "_link_query"  # the query a link named, until the person picks one (the run may not have it)
BROWSER_SCROLL = "_browser_scroll"  # a person moved the focus: bring the focused row into view on this redraw


# --- what a task export sends out (issue 25, item 19) -------------------------------------------

EXPORT_TASKS = "export_tasks"  # queue, suspects or judged
EXPORT_LIMIT = "export_limit"  # at most this many tasks (0: all)
EXPORT_THRESHOLD = "export_threshold"  # the suspects' P(FN|neg) threshold

# Review queue, issue 26: the table of why the learnt order orders as it does
REVIEW_WHY_TABLE = "review_why_table"


# --- team mode, issue 28: sign-in and roles --------------------------------------------------

SIGN_IN = "team_sign_in"  # the one button a stranger sees (one per provider: sign_in(provider))
SIGN_OUT = "team_sign_out"
TEAM_PERSON = "team_person"  # the Team page: whose role to set
TEAM_ROLE = "team_role"
TEAM_GRANT = "team_grant"


def sign_in(provider: str) -> str:
    """The sign-in button of one named provider (``[auth.<provider>]``)."""
    return f"{SIGN_IN}_{provider}"


def team_revoke(person: str) -> str:
    """The Team page's button that takes one person's role away."""
    return f"team_revoke_{person}"
