"""Warehouse tables (SQLAlchemy Core). Every table carries ``client_id``.

The tables are created and changed only through the Alembic migrations in
``warehouse/migrations``; this module is the current shape the code reads and writes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

CLIENT = 40
KEY = 255


# ids that grow (one per log entry or event) are 64-bit; SQLite keeps INTEGER so its rowid
# autoincrement still works (SQLite integers are 64-bit anyway).
BIGID = BigInteger().with_variant(Integer, "sqlite")


def _client() -> Column:
    return Column("client_id", String(CLIENT), nullable=False)


runs = Table(
    "runs",
    metadata,
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("pipeline", String(60), nullable=False),
    Column("logical_date", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(20), nullable=False),
    Column("summary", JSON),
    PrimaryKeyConstraint("client_id", "run_id", name="pk_runs"),
)

accounts = Table(
    "accounts",
    metadata,
    _client(),
    Column("account_key", String(KEY), nullable=False),
    Column("crm_id", String(KEY)),
    Column("name", Text),
    Column("name_norm", Text),
    Column("domain", String(KEY)),
    Column("website", Text),
    Column("industry", Text),
    Column("employees", Float),
    Column("annual_revenue", Float),
    Column("country", Text),
    Column("state", Text),
    Column("city", Text),
    Column("owner_id", String(KEY)),
    Column("account_type", Text),
    Column("tech_stack", Text),
    Column("funding_stage", Text),
    Column("last_funding_date", Date),
    Column("current_arr", Float),
    Column("is_partner", Boolean),
    Column("prevent_override", Boolean),
    Column("intent_score", Float),
    Column("crm_created", DateTime(timezone=True)),
    Column("crm_last_modified", DateTime(timezone=True)),
    # a band in the export (20 - 49, 10,000+, $1M-$5M) as a range; employees / annual_revenue hold
    # its representative value (ingest/bands.py). A plain number is its own range.
    Column("employees_low", Float),
    Column("employees_high", Float),
    Column("annual_revenue_low", Float),
    Column("annual_revenue_high", Float),
    # custom fields (config custom_fields.accounts): one JSON object, sorted keys, typed values
    Column("custom", Text),
    Column("source_file", Text),
    Column("source_row", Integer),
    Column("first_seen_run", String(KEY)),
    Column("last_seen_run", String(KEY)),
    Column("updated_at", DateTime(timezone=True)),
    # hash of the export values last loaded: an export row that repeats them is skipped unread
    Column("source_hash", BigInteger),
    PrimaryKeyConstraint("client_id", "account_key", name="pk_accounts"),
    Index("ix_accounts_domain", "client_id", "domain"),
)

# Every CRM record id that was folded into an account (the survivor and its duplicates).
account_crm_ids = Table(
    "account_crm_ids",
    metadata,
    _client(),
    Column("crm_id", String(KEY), nullable=False),
    Column("account_key", String(KEY), nullable=False),
    Column("is_survivor", Boolean, nullable=False),
    Column("run_id", String(KEY)),
    # the record as last read (NULL: read it again next time) and its domain before a review split
    Column("record_hash", BigInteger),
    Column("record_domain", String(KEY)),
    PrimaryKeyConstraint("client_id", "crm_id", name="pk_account_crm_ids"),
    Index("ix_account_crm_ids_account", "client_id", "account_key"),
)

account_merges = Table(
    "account_merges",
    metadata,
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("account_key", String(KEY), nullable=False),
    Column("kept_crm_id", String(KEY), nullable=False),
    Column("merged_crm_id", String(KEY), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_account_merges_run", "client_id", "run_id"),
)

review_queue = Table(
    "review_queue",
    metadata,
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("left_key", String(KEY), nullable=False),
    Column("right_key", String(KEY), nullable=False),
    Column("left_name", Text),
    Column("right_name", Text),
    Column("score", Float),
    Column("status", String(20), nullable=False, default="open"),
    # a person's decision (status "same" / "different"): who and when
    Column("decided_by", Text),
    Column("decided_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("client_id", "kind", "left_key", "right_key", name="pk_review_queue"),
)

rejected_rows = Table(
    "rejected_rows",
    metadata,
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("file", Text, nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("field", Text),
    Column("value", Text),
    Column("reason", Text, nullable=False),
    Index("ix_rejected_rows_run", "client_id", "run_id"),
)

# Kept rows with a nulled field (a bad optional value) or a flag, one row per field.
ingest_warnings = Table(
    "ingest_warnings",
    metadata,
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("file", Text, nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("field", Text),
    Column("value", Text),
    Column("reason", Text, nullable=False),
    Column("step", String(40)),  # extract | dedupe: a retried step replaces its own warnings
    Index("ix_ingest_warnings_run", "client_id", "run_id"),
)

# Typed frames between the extract, dedupe and load steps of one run: Parquet parts (column
# types kept, no JSON round trip; a step reads only the columns it needs).
staged_frames = Table(
    "staged_frames",
    metadata,
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("object", String(40), nullable=False),
    Column("part", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("client_id", "run_id", "object", "part", name="pk_staged_frames"),
)

contacts = Table(
    "contacts",
    metadata,
    _client(),
    Column("contact_key", String(KEY), nullable=False),
    Column("crm_id", String(KEY)),
    Column("account_key", String(KEY)),
    Column("account_crm_id", String(KEY)),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("title", Text),
    Column("department", Text),
    Column("email", String(KEY)),
    Column("linkedin_url", Text),
    Column("country", Text),
    Column("role_start_date", Date),
    Column("owner_id", String(KEY)),
    Column("opted_in", Boolean),
    Column("crm_last_modified", DateTime(timezone=True)),
    Column("custom", Text),  # custom_fields.contacts, as for accounts
    Column("source_row", Integer),
    Column("last_seen_run", String(KEY)),
    Column("updated_at", DateTime(timezone=True)),
    # hash of the export values last loaded: an export row that repeats them is skipped unread
    Column("source_hash", BigInteger),
    Column("record_hash", BigInteger),  # the export record as last read (ingest/reread.py)
    PrimaryKeyConstraint("client_id", "contact_key", name="pk_contacts"),
    Index("ix_contacts_account", "client_id", "account_key"),
)

opportunities = Table(
    "opportunities",
    metadata,
    _client(),
    Column("crm_id", String(KEY), nullable=False),
    Column("account_key", String(KEY)),
    Column("account_crm_id", String(KEY)),
    Column("name", Text),
    Column("stage", Text),
    Column("amount", Float),
    Column("is_closed", Boolean),
    Column("is_won", Boolean),
    Column("created_date", DateTime(timezone=True)),
    Column("close_date", Date),
    Column("owner_id", String(KEY)),
    Column("opp_type", Text),
    Column("crm_last_modified", DateTime(timezone=True)),
    Column("custom", Text),  # custom_fields.opportunities, as for accounts
    Column("source_row", Integer),
    Column("last_seen_run", String(KEY)),
    Column("updated_at", DateTime(timezone=True)),
    # hash of the export values last loaded: an export row that repeats them is skipped unread
    Column("source_hash", BigInteger),
    Column("record_hash", BigInteger),  # the export record as last read (ingest/reread.py)
    PrimaryKeyConstraint("client_id", "crm_id", name="pk_opportunities"),
    Index("ix_opportunities_account", "client_id", "account_key"),
)

reps = Table(
    "reps",
    metadata,
    _client(),
    Column("rep_id", String(KEY), nullable=False),
    Column("name", Text),
    Column("email", Text),
    Column("territory", Text),
    Column("active", Boolean, nullable=False, default=True),
    PrimaryKeyConstraint("client_id", "rep_id", name="pk_reps"),
)

# Scores are versioned by rubric: a new rubric version adds rows, never overwrites old ones.
account_scores = Table(
    "account_scores",
    metadata,
    _client(),
    Column("account_key", String(KEY), nullable=False),
    Column("product", String(80), nullable=False),
    Column("rubric_version", String(80), nullable=False),
    Column("score", Float),
    Column("tier", String(8)),
    Column("excluded", Boolean),
    Column("negatives", Text),
    Column("points", JSON),
    Column("unknown", Text),
    Column("max_attainable", Float),
    Column("max_attainable_tier", String(8)),
    Column("explanation", Text),
    Column("valuation", Float),
    Column("white_space", Float),
    Column("valuation_methods", Text),
    Column("intent", Float),
    Column("propensity", Float),
    Column("abm_grade", String(4)),
    Column("run_id", String(KEY)),
    Column("scored_at", DateTime(timezone=True)),
    Column("valued_at", DateTime(timezone=True)),  # the valuation's last write (wall clock): the push reads it
    PrimaryKeyConstraint("client_id", "account_key", "product", "rubric_version", name="pk_account_scores"),
)

contact_scores = Table(
    "contact_scores",
    metadata,
    _client(),
    Column("contact_key", String(KEY), nullable=False),
    Column("rubric_version", String(80), nullable=False),
    Column("account_key", String(KEY)),
    Column("persona_score", Float),
    Column("persona_tier", String(12)),
    Column("seniority", Text),
    Column("department", Text),
    Column("title_match", String(12)),
    Column("account_tier", String(8)),
    Column("priority", Text),
    Column("run_id", String(KEY)),
    Column("scored_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("client_id", "contact_key", "rubric_version", name="pk_contact_scores"),
)

enrichment_cache = Table(
    "enrichment_cache",
    metadata,
    _client(),
    Column("provider", String(80), nullable=False),
    Column("lookup_key", String(KEY), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("response", JSON),
    PrimaryKeyConstraint("client_id", "provider", "lookup_key", name="pk_enrichment_cache"),
)

credit_ledger = Table(
    "credit_ledger",
    metadata,
    Column("entry_id", BIGID, primary_key=True, autoincrement=True),
    _client(),
    Column("provider", String(80), nullable=False),
    Column("credits", Float, nullable=False),
    Column("account_key", String(KEY)),
    Column("lookup_key", String(KEY)),
    Column("run_id", String(KEY)),
    Column("outcome", String(20), nullable=False),
    Column("month", String(7), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_credit_ledger_month", "client_id", "month"),
)

push_log = Table(
    "push_log",
    metadata,
    Column("entry_id", BIGID, primary_key=True, autoincrement=True),
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("object", String(40), nullable=False),
    Column("record_key", String(KEY), nullable=False),
    Column("crm_id", String(KEY)),
    Column("operation", String(20), nullable=False),
    Column("fields_changed", JSON),
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_push_log_run", "client_id", "run_id"),
    Index("ix_push_log_record", "client_id", "object", "record_key"),
)

alerts = Table(
    "alerts",
    metadata,
    _client(),
    Column("fingerprint", String(KEY), nullable=False),
    Column("rule", String(80), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("role", String(20), nullable=False),
    Column("title", Text, nullable=False),
    Column("numbers", JSON),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_sent", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("client_id", "fingerprint", name="pk_alerts"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("event_id", BIGID, primary_key=True, autoincrement=True),
    _client(),
    Column("fingerprint", String(KEY), nullable=False),
    Column("run_id", String(KEY)),
    Column("event", String(20), nullable=False),
    Column("channel", Text),
    Column("payload", JSON),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_alert_events", "client_id", "fingerprint"),
)

territory_assignments = Table(
    "territory_assignments",
    metadata,
    Column("entry_id", BIGID, primary_key=True, autoincrement=True),
    _client(),
    Column("account_key", String(KEY), nullable=False),
    Column("rep_id", String(KEY), nullable=False),
    Column("source", String(20), nullable=False),
    Column("run_id", String(KEY)),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Index("ix_territory_account", "client_id", "account_key"),
)

# --------------------------------------------------------------------------- enrichment (migration 0003)

# Why a ledger row exists beyond credits and outcome: the reason of a miss or an error
# (redacted), and when the reservation was settled (NULL while the call is in flight).
credit_ledger.append_column(Column("detail", Text))
credit_ledger.append_column(Column("settled_at", DateTime(timezone=True)))
# A retried lookup finds its open reservation by (client, provider, lookup key).
Index(
    "ix_credit_ledger_lookup", credit_ledger.c.client_id, credit_ledger.c.provider, credit_ledger.c.lookup_key
)

# Contacts found by persona enrichment carry their provider; no e-mail = manual research.
contacts.append_column(Column("source", String(80)))
contacts.append_column(Column("needs_research", Boolean))

# Which provider filled which account field, when, and the value it gave: the refresh age
# is measured from filled_at, and a value blanked by a CRM reload is restored from here
# without paying again.
account_field_sources = Table(
    "account_field_sources",
    metadata,
    _client(),
    Column("account_key", String(KEY), nullable=False),
    Column("field", String(80), nullable=False),
    Column("provider", String(80), nullable=False),
    Column("value", JSON),
    Column("filled_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(KEY)),
    PrimaryKeyConstraint("client_id", "account_key", "field", name="pk_account_field_sources"),
)

# Rows sent to a Clay table's webhook and what came back to the callback endpoint.
clay_rows = Table(
    "clay_rows",
    metadata,
    _client(),
    Column("batch_id", String(80), nullable=False),
    Column("row_id", String(80), nullable=False),
    Column("provider", String(80), nullable=False),
    Column("account_key", String(KEY)),
    Column("lookup_key", String(KEY), nullable=False),
    Column("entry_id", BIGID),
    Column("run_id", String(KEY)),
    Column("status", String(20), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True)),
    Column("data", JSON),
    PrimaryKeyConstraint("client_id", "batch_id", "row_id", name="pk_clay_rows"),
    Index("ix_clay_rows_lookup", "client_id", "provider", "lookup_key"),
)

# Per run, provider and field (``*`` = the provider as a whole): real lookups made (cache
# reads excluded), hits, fields asked for and filled, credits. Feeds the optimisation report.
enrichment_stats = Table(
    "enrichment_stats",
    metadata,
    _client(),
    Column("run_id", String(KEY), nullable=False),
    Column("provider", String(80), nullable=False),
    Column("field", String(80), nullable=False),
    Column("lookups", Integer, nullable=False, default=0),
    Column("hits", Integer, nullable=False, default=0),
    Column("requested", Integer, nullable=False, default=0),
    Column("filled", Integer, nullable=False, default=0),
    Column("credits", Float, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("client_id", "run_id", "provider", "field", name="pk_enrichment_stats"),
)


# --------------------------------------------------------------------------- CRM sync (0002)

# The last known CRM values of every CRM record Market Map reads or writes: filled by the
# extract (the CRM's truth) and by each successful push (what was written). The push plan
# diffs against it, so a record whose fields would not change costs no API call.
crm_records = Table(
    "crm_records",
    metadata,
    _client(),
    Column("object", String(40), nullable=False),
    Column("crm_id", String(KEY), nullable=False),
    Column("name", Text),
    Column("domain", String(KEY)),
    Column("email", String(KEY)),
    Column("linkedin", String(KEY)),
    Column("account_crm_id", String(KEY)),
    Column("external_id", String(KEY)),
    Column("field_values", JSON),
    Column("crm_last_modified", DateTime(timezone=True)),
    Column("source", String(20), nullable=False),
    Column("seen_run", String(KEY)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("client_id", "object", "crm_id", name="pk_crm_records"),
    Index("ix_crm_records_domain", "client_id", "object", "domain"),
    Index("ix_crm_records_email", "client_id", "object", "email"),
    Index("ix_crm_records_external_id", "client_id", "object", "external_id"),
    Index("ix_crm_records_linkedin", "client_id", "object", "linkedin"),
)

# Per Market Map record and object: the CRM record it is synced to, the values last pushed,
# and whether the last attempt failed (a failed record counts as changed on the next run).
crm_sync = Table(
    "crm_sync",
    metadata,
    _client(),
    Column("object", String(40), nullable=False),
    Column("record_key", String(KEY), nullable=False),
    Column("crm_id", String(KEY)),
    Column("pushed", JSON),
    Column("status", String(20), nullable=False),
    Column("failed", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("run_id", String(KEY)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("client_id", "object", "record_key", name="pk_crm_sync"),
)

# Which step of a push wrote a push_log row: canary sample or main load.
push_log.append_column(Column("phase", String(20)))

# --------------------------------------------------------------------------- proposals (migration 0007)

# A reviewed change waiting for approval: a territory rebalance or a stale-account round robin.
# Approving names the proposal id and applies exactly its stored moves, once (never a fresh
# computation); each move remembers when it reached the warehouse and when the CRM confirmed it,
# so a retry after a CRM failure pushes only what is still missing.
proposals = Table(
    "proposals",
    metadata,
    _client(),
    Column("proposal_id", String(80), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("run_id", String(KEY), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("approved_run_id", String(KEY)),
    Column("approved_at", DateTime(timezone=True)),
    Column("summary", JSON),
    PrimaryKeyConstraint("client_id", "proposal_id", name="pk_proposals"),
)

proposal_moves = Table(
    "proposal_moves",
    metadata,
    _client(),
    Column("proposal_id", String(80), nullable=False),
    Column("account_key", String(KEY), nullable=False),
    Column("from_rep", String(KEY)),
    Column("to_rep", String(KEY), nullable=False),
    Column("value", Float),
    Column("tier", String(10)),
    Column("reason", Text),
    Column("outcome", String(20)),
    Column("applied_at", DateTime(timezone=True)),
    Column("pushed_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("client_id", "proposal_id", "account_key", name="pk_proposal_moves"),
)

# --------------------------------------------------------------------------- client status (migration 0012)

# One small row per client that the portfolio pages read instead of counting a client's whole
# score table on every page view: the tier counts of the current rubric version, refreshed by
# every pipeline that publishes new scores.
client_status = Table(
    "client_status",
    metadata,
    _client(),
    Column("rubric_version", String(KEY), nullable=False),
    Column("product", String(KEY), nullable=False),
    Column("tiers", JSON, nullable=False),
    Column("run_id", String(KEY)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("client_id", name="pk_client_status"),
)

# What the last complete scoring of a kind (accounts) and version saw: the run date its recency
# vectors used and when it started. A monthly re-score reads only the accounts that changed since,
# or whose recency window was crossed between the two run dates (scoring.pipeline).
# Per client and pushed object: the start of the last complete push and what it was planned
# under (push mapping, score versions, planner code). The next push plans only records whose
# inputs changed since (crm.plan); anything else about it differing means a full plan.
push_state = Table(
    "push_state",
    metadata,
    _client(),
    Column("object", String(40), nullable=False),
    Column("config_hash", String(40), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("run_id", String(KEY)),
    PrimaryKeyConstraint("client_id", "object", name="pk_push_state"),
)

scoring_state = Table(
    "scoring_state",
    metadata,
    _client(),
    Column("kind", String(40), nullable=False),
    Column("rubric_version", String(KEY), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("code_version", String(40), nullable=False),
    Column("run_id", String(KEY)),
    PrimaryKeyConstraint("client_id", "kind", "rubric_version", name="pk_scoring_state"),
)
