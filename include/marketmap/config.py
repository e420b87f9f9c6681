"""Client configuration: typed models, layered loading and validation errors.

One YAML file per client company (``include/clients/<client>.yaml``) is merged on top of
the firm-wide defaults (``include/clients/_defaults.yaml``), then validated by the
pydantic models below. Every problem is reported at once, each naming the file, the key
path and what was expected. Credentials never appear here: only Airflow connection ids.
"""

from __future__ import annotations

import codecs
import copy
import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

TIERS = ("T1", "T2", "T3")
PERSONA_TIERS = ("P1", "P2", "P3")
DEFAULTS_FILE = "_defaults.yaml"
CLIENT_ID_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"


def clients_dir() -> Path:
    """The folder of client YAML files (``MARKETMAP_CLIENTS_DIR`` overrides it)."""
    override = os.environ.get("MARKETMAP_CLIENTS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "clients"


class ConfigError(Exception):
    """One or more problems in client configuration files.

    ``problems`` holds ``(file, key_path, message)`` triples; ``str()`` lists them one
    per line so that the Airflow log and the CLI show every problem together.
    """

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {k}: {m}" if k else f"{f}: {m}" for f, k, m in problems))


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- CRM


class CsvSource(Strict):
    """CRM export files (Salesforce report/data export or HubSpot export) for the csv kind
    and for the initial build of any kind. Relative paths are resolved against
    ``<storage root>/inbox/<client>/`` (``marketmap.storage``; default ``$MARKETMAP_HOME``)."""

    format: Literal["salesforce", "hubspot"] = "salesforce"
    encoding: str = "utf-8-sig"
    accounts: str = "Account.csv"
    contacts: str | None = "Contact.csv"
    opportunities: str | None = "Opportunity.csv"
    users: str | None = None
    # canonical field -> column in the export, layered over the format's preset
    account_columns: dict[str, str] = {}
    contact_columns: dict[str, str] = {}
    opportunity_columns: dict[str, str] = {}
    # How to read the files (all optional). Amounts are stored in ``currency``: an amount in
    # another currency (a currency column, or a sign/code in the cell) is converted with
    # ``fx_rates`` (1 unit of that currency = rate units of ``currency``) or left blank with a warning.
    currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")
    fx_rates: dict[str, float] = {}
    date_order: Literal["auto", "dmy", "mdy"] = Field(
        "auto", description="day/month order of d/m/y dates; auto decides from the file's unambiguous values"
    )
    delimiter: Literal["auto", ",", ";", "\t", "|"] = "auto"
    decimal: Literal["auto", ".", ","] = Field("auto", description="auto: ',' in ';'-separated files, else '.'")
    # Hosts that are never a company's own domain, on top of the package list (ingest/not_company_hosts.txt).
    not_company_hosts: list[str] = []

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(
                f"unknown encoding '{v}' (expected a Python codec name such as utf-8-sig, cp1252 or latin-1)"
            ) from None
        return v

    @model_validator(mode="after")
    def _known_column_names(self, info: ValidationInfo) -> CsvSource:
        from marketmap.ingest.schema import FIELDS  # a dict of names: light enough for parse time

        # custom field names (custom_fields.<object>[].name) may be mapped too: the column overrides theirs
        custom = (info.context or {}).get("custom_fields", {}) if info is not None else {}
        problems = []
        for key, obj in (("account_columns", "accounts"), ("contact_columns", "contacts"),
                         ("opportunity_columns", "opportunities")):  # fmt: skip
            extra = sorted(set(custom.get(obj, ())) - set(FIELDS[obj]))
            unknown = [k for k in getattr(self, key) if k not in FIELDS[obj] and k not in extra]
            if unknown:
                problems.append(
                    f"{key} maps unknown field(s) {unknown}; the keys are Market Map field names, the values "
                    f"the export's columns (e.g. employees: NumberOfEmployees). Valid names: {', '.join(FIELDS[obj])}"
                    f"{', '.join(['', *extra])}. A column that is no built-in field is declared in "
                    f"custom_fields.{obj} (e.g. {{name: region, type: text, column: Region__c}})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class CrmConfig(Strict):
    kind: Literal["salesforce", "hubspot", "csv"]
    conn_id: str | None = Field(None, description="Airflow connection id holding the CRM credentials")
    objects: dict[str, str] = {"account": "Account", "contact": "Contact", "opportunity": "Opportunity"}
    export: CsvSource = CsvSource()
    pool: str | None = Field(None, description="Airflow pool that rate-limits calls to this CRM")

    @model_validator(mode="after")
    def _conn_for_api(self) -> CrmConfig:
        if self.kind in ("salesforce", "hubspot") and not self.conn_id:
            raise ValueError(f"crm.kind '{self.kind}' needs conn_id (an Airflow connection id)")
        return self


# --------------------------------------------------------------------------- ICP matrix


class Band(Strict):
    """Numeric band: ``min <= value < max`` scores ``points`` (open ends allowed)."""

    min: float | None = None
    max: float | None = None
    points: float

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"band min {self.min} must be below max {self.max}")
        return self


class NumericVector(Strict):
    kind: Literal["bands"]
    name: str
    field: str
    weight: float = Field(gt=0, le=100)
    bands: list[Band] = Field(min_length=1)

    @model_validator(mode="after")
    def _bands(self) -> NumericVector:
        ordered = sorted(self.bands, key=lambda b: -float("inf") if b.min is None else b.min)
        for a, b in zip(ordered, ordered[1:], strict=False):
            a_max = float("inf") if a.max is None else a.max
            b_min = -float("inf") if b.min is None else b.min
            if b_min < a_max:
                raise ValueError(f"bands overlap: [{a.min}, {a.max}) and [{b.min}, {b.max})")
        _points_within_weight(self.weight, [b.points for b in self.bands])
        return self


class CategoricalVector(Strict):
    kind: Literal["categorical"]
    name: str
    field: str
    weight: float = Field(gt=0, le=100)
    points: dict[str, float] = Field(min_length=1, description="value (case-insensitive) -> points")
    default: float = 0

    @model_validator(mode="after")
    def _pts(self) -> CategoricalVector:
        _points_within_weight(self.weight, [*self.points.values(), self.default])
        return self


class AnyOfVector(Strict):
    """Any-of set (tech stack): points for the best match among the listed values."""

    kind: Literal["any_of"]
    name: str
    field: str
    weight: float = Field(gt=0, le=100)
    points: dict[str, float] = Field(min_length=1, description="value -> points; best match counts")
    separator: str = ";"
    default: float = 0

    @model_validator(mode="after")
    def _pts(self) -> AnyOfVector:
        _points_within_weight(self.weight, [*self.points.values(), self.default])
        return self


class RecencyVector(Strict):
    """Recency (e.g. funding): points if the date lies within ``within_months`` of the run date."""

    kind: Literal["recency"]
    name: str
    field: str
    weight: float = Field(gt=0, le=100)
    windows: list[RecencyWindow] = Field(min_length=1)

    @model_validator(mode="after")
    def _pts(self) -> RecencyVector:
        _points_within_weight(self.weight, [w.points for w in self.windows])
        months = [w.within_months for w in self.windows]
        if len(set(months)) != len(months):
            raise ValueError("recency windows repeat a within_months value")
        return self


class RecencyWindow(Strict):
    within_months: int = Field(gt=0)
    points: float


class BooleanVector(Strict):
    kind: Literal["boolean"]
    name: str
    field: str
    weight: float = Field(gt=0, le=100)
    true_points: float
    false_points: float = 0

    @model_validator(mode="after")
    def _pts(self) -> BooleanVector:
        _points_within_weight(self.weight, [self.true_points, self.false_points])
        return self


RecencyVector.model_rebuild()

Vector = Annotated[
    NumericVector | CategoricalVector | AnyOfVector | RecencyVector | BooleanVector,
    Field(discriminator="kind"),
]


def _points_within_weight(weight: float, points: list[float]) -> None:
    bad = [p for p in points if p < 0 or p > weight]
    if bad:
        raise ValueError(f"points {bad} must lie between 0 and the vector weight {weight:g}")


class NegativeIndicator(Strict):
    """A negative signal: exclude the account, cap its tier, or subtract points.

    Matches when ``field`` equals one of ``values`` (case-insensitive), is in the list
    ``contains_any`` as a substring, or (for ``is_true``) is truthy.
    """

    name: str
    field: str
    values: list[str] = []
    contains_any: list[str] = []
    is_true: bool = False
    action: Literal["exclude", "cap_tier", "subtract"]
    cap: Literal["T2", "T3"] | None = None
    points: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _action_args(self) -> NegativeIndicator:
        if not (self.values or self.contains_any or self.is_true):
            raise ValueError("give values, contains_any or is_true: true")
        if self.action == "cap_tier" and self.cap is None:
            raise ValueError("action cap_tier needs cap: T2 or T3")
        if self.action == "subtract" and self.points is None:
            raise ValueError("action subtract needs points")
        if self.cap is not None and self.action != "cap_tier":
            raise ValueError(f"cap only applies to action cap_tier, not {self.action}")
        if self.points is not None and self.action != "subtract":
            raise ValueError(f"points only apply to action subtract, not {self.action}")
        return self


class TierThresholds(Strict):
    """Lower bounds: score >= T1 is T1, >= T2 is T2, >= T3 is T3, below is out of scope."""

    T1: float = 75
    T2: float = 50
    T3: float = 25

    @model_validator(mode="after")
    def _order(self) -> TierThresholds:
        if not (100 >= self.T1 > self.T2 > self.T3 >= 0):
            raise ValueError(
                f"thresholds must satisfy 100 >= T1 > T2 > T3 >= 0, got T1={self.T1:g}, "
                f"T2={self.T2:g}, T3={self.T3:g} (overlapping or out of order)"
            )
        return self


class Rubric(Strict):
    """One product's ICP rubric: 5-10 weighted vectors summing to 100."""

    product: str = "core"
    tier_field: str = "tier"
    vectors: list[Vector] = Field(min_length=1, max_length=12)
    negative_indicators: list[NegativeIndicator] = Field([], max_length=62)  # a 64-bit match mask in scoring
    thresholds: TierThresholds = TierThresholds()

    @model_validator(mode="after")
    def _weights(self) -> Rubric:
        total = sum(v.weight for v in self.vectors)
        if abs(total - 100) > 1e-6:
            raise ValueError(f"vector weights must sum to 100, they sum to {total:g}")
        names = [v.name for v in self.vectors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"vector names repeat: {dup}")
        return self


class IntentConfig(Strict):
    field: str = "intent_score"
    weight: float = Field(1.0, ge=0)
    provider: str | None = None


class IcpConfig(Strict):
    version: str = Field(description="rubric version; scores are stored per version")
    rubrics: list[Rubric] = Field(min_length=1)
    intent: IntentConfig | None = None
    abm_grade: bool = False

    @model_validator(mode="after")
    def _products(self) -> IcpConfig:
        products = [r.product for r in self.rubrics]
        if len(set(products)) != len(products):
            raise ValueError(f"rubric products repeat: {products}")
        return self


# --------------------------------------------------------------------------- valuation


class ValuationConfig(Strict):
    methods: list[Literal["revenue", "headcount", "product", "like_accounts", "extrapolation"]] = Field(
        min_length=1
    )
    combine: Literal["median", "mean", "first"] = "median"
    revenue_coefficient: float | None = Field(None, gt=0)
    seat_price: float | None = Field(None, gt=0)
    penetration: float | None = Field(None, gt=0, le=1)
    product_field: str | None = None
    product_coefficient: float | None = Field(None, gt=0)
    like_accounts_k: int = Field(5, ge=1)
    min_value: float = 0
    max_value: float | None = None

    @model_validator(mode="after")
    def _coefficients(self) -> ValuationConfig:
        need = {
            "revenue": ["revenue_coefficient"],
            "headcount": ["seat_price", "penetration"],
            "product": ["product_field", "product_coefficient"],
        }
        missing = [
            f"{m} needs {k}" for m in self.methods for k in need.get(m, []) if getattr(self, k) is None
        ]
        if missing:
            raise ValueError("; ".join(missing))
        return self


# --------------------------------------------------------------------------- personas


class PersonaTitleMatch(Strict):
    exact: list[str] = []
    adjacent: list[str] = []
    broad: list[str] = []


class CoverageTarget(Strict):
    """Per account tier: minimum Tier-1 personas, Tier-2 personas and contacts."""

    p1: int = Field(ge=0)
    p2: int = Field(ge=0)
    contacts: int = Field(ge=0)


class PersonaConfig(Strict):
    titles: PersonaTitleMatch = PersonaTitleMatch()
    core_departments: list[str] = []
    adjacent_departments: list[str] = []
    primary_geographies: list[str] = []
    secondary_geographies: list[str] = []
    negative_titles: list[str] = []
    weights: dict[str, float] = {
        "title": 30,
        "seniority": 25,
        "department": 20,
        "geography": 15,
        "tenure": 10,
    }
    thresholds: dict[str, float] = {"P1": 70, "P2": 40}
    coverage_targets: dict[Literal["T1", "T2", "T3"], CoverageTarget] = {
        "T1": CoverageTarget(p1=2, p2=3, contacts=5),
        "T2": CoverageTarget(p1=1, p2=2, contacts=3),
        "T3": CoverageTarget(p1=0, p2=1, contacts=1),
    }
    title_aliases: dict[str, str] = Field({}, description="extra abbreviation -> expansion rules")
    gdpr: Literal["enrich", "skip", "opted_in_only"] = "enrich"

    @model_validator(mode="after")
    def _weights(self) -> PersonaConfig:
        unknown = set(self.weights) - {"title", "seniority", "department", "geography", "tenure"}
        if unknown:
            raise ValueError(f"unknown persona weights {sorted(unknown)}")
        total = sum(self.weights.values())
        if abs(total - 100) > 1e-6:
            raise ValueError(f"persona weights must sum to 100, they sum to {total:g}")
        if set(self.thresholds) != {"P1", "P2"} or not (
            100 >= self.thresholds["P1"] > self.thresholds["P2"] > 0
        ):
            raise ValueError("persona thresholds need P1 > P2 > 0 (P3 is everything below P2)")
        return self


# --------------------------------------------------------------------------- enrichment


class ProviderConfig(Strict):
    name: str
    kind: Literal["apollo", "zoominfo", "clay", "export_file", "http_json", "simulated"]
    conn_id: str | None = None
    cost_per_call: float = Field(0, ge=0, description="credits per call")
    fields: list[str] = Field(min_length=1, description="canonical fields this provider can fill")
    rate_limit_per_minute: int = Field(60, gt=0)
    pool: str | None = None
    options: dict[str, Any] = {}


class EnrichmentConfig(Strict):
    providers: list[ProviderConfig] = []
    monthly_credit_budget: float = Field(0, ge=0)
    refresh_days: int = Field(180, ge=1)
    min_attainable_tier: Literal["T1", "T2", "T3"] = "T2"

    @model_validator(mode="after")
    def _unique(self) -> EnrichmentConfig:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names repeat: {names}")
        return self


# --------------------------------------------------------------------------- CRM push mapping


class PushField(Strict):
    source: str = Field(description="Market Map output field, e.g. tier, fit_score, valuation")
    crm_field: str
    policy: Literal["overwrite", "if_blank", "never"] = "overwrite"
    picklist: dict[str, str] | None = Field(None, description="Market Map value -> CRM picklist value")

    @model_validator(mode="after")
    def _picklist_covers_every_tier(self) -> PushField:
        if self.picklist is not None and (self.source == "tier" or self.source.endswith("_tier")):
            domain = PERSONA_TIERS if self.source == "persona_tier" else TIERS
            missing = [t for t in domain if t not in self.picklist]
            # OUT / EXCLUDED are optional: PushConfig.out_of_scope decides what they become
            if missing:
                raise ValueError(
                    f"picklist for {self.crm_field} misses {missing} (every tier needs a CRM value)"
                )
        return self


class PushConfig(Strict):
    object: Literal["account", "contact"] = "account"
    mode: Literal["update_only", "create_only", "upsert"] = "update_only"
    external_id_field: str | None = None
    prevent_override_field: str | None = None
    fields: list[PushField] = []
    canary_size: int = Field(15, ge=10, le=20)
    max_error_rate: float = Field(0.05, ge=0, le=1)
    value_normalisation: dict[str, dict[str, str]] = Field(
        {}, description="crm_field -> {raw value -> CRM value}, e.g. State: {Calif.: CA}"
    )
    out_of_scope: Literal["value", "blank", "skip"] = Field(
        "blank",
        description="What out-of-scope accounts (tier OUT) / excluded contacts (persona EXCLUDED) get: "
        "'value' = the picklist's OUT/EXCLUDED entry (or the literal value without a picklist), "
        "'blank' = the tier field is cleared (other fields still pushed), 'skip' = the record is not pushed",
    )
    deleted_in_crm: Literal["recreate", "skip", "flag"] = Field(
        "flag",
        description="A record Market Map knew that was deleted in the CRM: create it again, leave it "
        "alone, or leave it alone and report it (push log + alert)",
    )
    create_missing_fields: bool = Field(
        False,
        description="Preflight creates missing fields/properties and picklist options (HubSpot; Salesforce "
        "through the Metadata API when permitted, otherwise an admin to-do list)",
    )
    park_after_failures: int = Field(
        3, ge=1, description="A record failing this many runs in a row is parked (skipped, with its reason)"
    )

    @model_validator(mode="after")
    def _out_of_scope_has_a_value(self) -> PushConfig:
        if self.out_of_scope != "value":
            return self
        for f in self.fields:
            if f.picklist is None or not (f.source == "tier" or f.source.endswith("_tier")):
                continue
            special = "EXCLUDED" if f.source == "persona_tier" else "OUT"
            if special not in f.picklist:
                raise ValueError(
                    f"out_of_scope is 'value' but the picklist for {f.crm_field} has no {special} entry "
                    f"(add {special}: <CRM value>, or choose out_of_scope: blank / skip)"
                )
        return self


# --------------------------------------------------------------------------- people, schedule, alerts


class Rep(Strict):
    id: str
    name: str
    email: str | None = None
    territory: str | None = None
    active: bool = True


class TerritoryConfig(Strict):
    reps: list[Rep] = []
    exceptions: list[str] = Field([], description="account keys never moved by a rebalance")
    partner_field: str | None = Field(
        None, description="accounts with this field true stay out of territories"
    )


class QaConfig(Strict):
    """Bounds of the pre-push QA gates (seed 000 QA checklist); a small team or a pilot sets its own."""

    t1_share_min: float = Field(0.005, ge=0, le=1, description="lowest T1 share of in-scope accounts")
    t1_share_max: float = Field(0.5, ge=0, le=1, description="highest T1 share of in-scope accounts")
    accounts_per_rep_min: int = Field(50, ge=0, description="fewest in-scope accounts a rep may own")
    accounts_per_rep_warn: int = Field(2_000, ge=1, description="a rep above this gets a warning")
    accounts_per_rep_max: int = Field(10_000, ge=1, description="most in-scope accounts a rep may own")

    @model_validator(mode="after")
    def _ordered(self) -> QaConfig:
        if not self.t1_share_min < self.t1_share_max:
            raise ValueError("t1_share_min must be below t1_share_max")
        if not self.accounts_per_rep_min <= self.accounts_per_rep_warn <= self.accounts_per_rep_max:
            raise ValueError("expected accounts_per_rep_min <= accounts_per_rep_warn <= accounts_per_rep_max")
        return self

    def bounds(self) -> dict:
        """Keyword arguments of ``analysis.qa.qa_gates``."""
        return {"t1_share_bounds": (self.t1_share_min, self.t1_share_max), "rep_min": self.accounts_per_rep_min,
                "rep_warn": self.accounts_per_rep_warn, "rep_max": self.accounts_per_rep_max}  # fmt: skip


class OutcomeConfig(Strict):
    """The outcome the back-test, executive report, preview, suggestion and drift rules measure.

    ``closed_won`` (the default): closed new-business deals, won or lost — win rate by tier.
    ``opportunity_created``: for a client without enough closed deals, whether an account had
    a new-business opportunity created (on or after ``since``) — opportunity-created rate by tier.
    """

    kind: Literal["closed_won", "opportunity_created"] = Field(
        "closed_won",
        description="closed_won: win rate of closed new-business deals by tier; opportunity_created: "
        "share of accounts with a new-business opportunity created, by tier",
    )
    since: dt.date | None = Field(
        None, description="opportunity_created only: count opportunities created on or after this date"
    )

    @model_validator(mode="after")
    def _since_needs_created(self) -> OutcomeConfig:
        if self.since is not None and self.kind != "opportunity_created":
            raise ValueError(
                f"since only applies to kind opportunity_created (got kind {self.kind}); remove since "
                "or set kind: opportunity_created"
            )
        return self


class MaintenanceConfig(Strict):
    blank_tier_max_share: float = Field(0.05, ge=0, le=1)
    untiered_days: int = Field(30, ge=1)
    stale_owner_months: int = Field(6, ge=1)
    persona_p1_coverage_min: float = Field(0.5, ge=0, le=1)
    t1_min_contacts: int = Field(4, ge=0)
    drift_window_days: int = Field(60, ge=1)
    drift_min_deals: int = Field(30, ge=1)
    lift_min: float = Field(1.5, gt=0)
    valuation_divergence: float = Field(0.3, gt=0)
    territory_max_ratio: float = Field(2.0, gt=1)
    territory_band: float = Field(0.2, gt=0, lt=1)
    territory_value: Literal["account_owner", "opportunity_owner", "open_pipeline", "won_value"] = Field(
        "account_owner",
        description="what a rep's territory is worth: valuations of the accounts they own (account_owner), "
        "valuations split by who works the account's deals (opportunity_owner), the open pipeline or the "
        "won value of the last 365 days of the deals they own",
    )
    alert_snooze_days: int = Field(7, ge=0)
    task_timeout_hours: float = Field(6, gt=0, description="execution_timeout of every task")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    outcome: OutcomeConfig = Field(
        OutcomeConfig(), description="what counts as success in back-tests, reports and drift rules"
    )


class RetentionConfig(Strict):
    """How long history is kept; applied by the monthly DAG's prune_history task."""

    push_log_days: int = Field(90, ge=1, description="push_log rows older than this are deleted")
    score_versions_kept: int = Field(
        3, ge=1, description="newest score versions kept per table; the current version is always kept"
    )
    cache_days: int | None = Field(
        None, ge=1, description="enrichment cache entries older than this are deleted (default: refresh_days)"
    )
    alert_events_days: int = Field(365, ge=1, description="alert_events rows older than this are deleted")


class ScheduleConfig(Strict):
    """Cron expressions in the client's timezone; ``null`` turns a pipeline off.

    A pipeline left at its default runs at a minute of the hour derived from the client id
    (see :meth:`staggered`), so a hundred clients' monthly runs do not all start at 06:00.
    """

    build: str | None = None
    monthly: str | None = "0 6 1 * *"
    quarterly_personas: str | None = "0 6 2 1,4,7,10 *"
    drift: str | None = "0 7 * * 1"
    valuation: str | None = "0 7 3 1,7 *"
    territories: str | None = "0 7 4 1,7 *"

    @field_validator("*")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        from croniter import croniter  # installed with Airflow, whose cron timetables use it

        if v is not None and not croniter.is_valid(v):
            raise ValueError(
                f"invalid cron expression '{v}' (five fields: minute hour day-of-month month day-of-week, "
                "e.g. '0 6 1 * *' = 06:00 on the 1st of every month; null turns the pipeline off)"
            )
        return v

    def staggered(self, client_id: str) -> ScheduleConfig:
        """Defaults moved to the client's own minute; schedules the client wrote stay as written."""
        import zlib

        minute = str(zlib.crc32(client_id.encode()) % 60)
        moved = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if (
                name not in self.model_fields_set
                and value
                and value == field.default
                and value.startswith("0 ")
            ):
                moved[name] = minute + value[1:]
        return self.model_copy(update=moved)


SlackRole = Literal["revops", "leadership", "architect"]


class SlackConfig(Strict):
    conn_id: str | None = Field(None, description="Airflow Slack connection; none = local outbox file")
    channels: dict[SlackRole, str] = Field(description="stakeholder role -> Slack channel")

    @field_validator("channels")
    @classmethod
    def _all_roles(cls, v: dict[str, str]) -> dict[str, str]:
        missing = [r for r in ("revops", "leadership", "architect") if r not in v]
        if missing:
            raise ValueError(f"channels misses roles {missing}")
        return v


class ScopingFacts(Strict):
    """Facts of the scoping call (seeds 000/002) from which the approach is recommended."""

    reps: int | None = None
    tam_size: int | None = None
    vertical: bool | None = None
    customers: int | None = None
    closed_won_deals: int | None = None
    closed_deals: int | None = None
    crm_clean: bool | None = None
    credit_budget: float | None = None
    urgent: bool | None = None


# --------------------------------------------------------------------------- custom fields

CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# vector kind -> custom field types it can score (built-in fields have their own types)
VECTOR_TYPES = {
    "bands": ("number",),
    "categorical": ("text", "number", "boolean"),
    "any_of": ("text", "list"),
    "recency": ("date",),
    "boolean": ("boolean",),
}


class CustomField(Strict):
    """A column of an export (or a CRM field on extract) kept in the warehouse as a typed attribute.

    Stored per record in the ``custom`` JSON column; rubric vectors, negative indicators,
    reports and push mappings use it by ``name`` like a built-in field.
    """

    name: str = Field(description="Market Map name (lower case, digits, _), used by vectors and push sources")
    type: Literal["text", "number", "date", "boolean", "list"]
    column: str = Field(min_length=1, description="the export's column (a Salesforce API name, HubSpot property)")
    crm_field: str | None = Field(None, description="the CRM field read on an API extract, if not `column`")
    separator: str = Field(";", min_length=1, description="list: what separates the values in one cell")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not CUSTOM_NAME.match(v):
            suggestion = re.sub(r"[^a-z0-9_]+", "_", v.lower()).strip("_") or "field"
            if not suggestion[0].isalpha():
                suggestion = f"f_{suggestion}"
            raise ValueError(
                f"custom field name '{v}' must be lower-case letters, digits and _ starting with a letter "
                f"(at most 63), e.g. {suggestion[:63]}; the export's column goes in `column`"
            )
        return v

    @property
    def source_field(self) -> str:
        return self.crm_field or self.column


COLUMNS_KEY = {"accounts": "account_columns", "contacts": "contact_columns", "opportunities": "opportunity_columns"}


class CustomFields(Strict):
    """``custom_fields:`` per object; each name is new for its object (not a built-in field)."""

    accounts: list[CustomField] = []
    contacts: list[CustomField] = []
    opportunities: list[CustomField] = []

    def of(self, obj: str) -> list[CustomField]:
        """The custom fields of ``obj`` (accounts/contacts/opportunities or account/contact/opportunity)."""
        plural = {"account": "accounts", "contact": "contacts", "opportunity": "opportunities"}.get(obj, obj)
        return list(getattr(self, plural))

    def specs(self, obj: str, columns: dict[str, str] | None = None, crm: bool = False) -> list:
        """Reader specs of ``obj``'s custom fields; ``columns`` (crm.export.*_columns) may move a column."""
        from marketmap.ingest.schema import CustomSpec

        columns = columns or {}
        return [
            CustomSpec(f.name, f.type, columns.get(f.name) or (f.source_field if crm else f.column), f.separator)
            for f in self.of(obj)
        ]


# --------------------------------------------------------------------------- the client


class ClientConfig(Strict):
    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    name: str
    owner: str = "revops"
    timezone: str = "UTC"
    launch_date: dt.date | None = None
    crm: CrmConfig
    icp: IcpConfig
    valuation: ValuationConfig
    personas: PersonaConfig = PersonaConfig()
    enrichment: EnrichmentConfig = EnrichmentConfig()
    push: list[PushConfig] = []
    territories: TerritoryConfig = TerritoryConfig()
    maintenance: MaintenanceConfig = MaintenanceConfig()
    retention: RetentionConfig = RetentionConfig()
    qa: QaConfig = QaConfig()
    schedules: ScheduleConfig = Field(default_factory=ScheduleConfig, validate_default=True)
    slack: SlackConfig
    scoping: ScopingFacts = ScopingFacts()
    custom_fields: CustomFields = CustomFields()
    warehouse_conn_id: str | None = Field(
        None, description="Airflow connection of the warehouse, if not default"
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone '{v}' (expected an IANA name like Europe/Berlin)") from None
        return v

    @field_validator("schedules")
    @classmethod
    def _stagger_default_schedules(cls, v: ScheduleConfig, info: ValidationInfo) -> ScheduleConfig:
        return v.staggered(info.data.get("client_id") or "")

    @model_validator(mode="after")
    def _provider_connections(self) -> ClientConfig:
        for p in self.enrichment.providers:
            if p.kind in ("apollo", "zoominfo", "http_json", "clay") and not p.conn_id:
                raise ValueError(f"provider '{p.name}' ({p.kind}) needs conn_id")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def account_field_names(cfg: ClientConfig) -> set[str]:
    """Account fields a rubric can use: the canonical account fields, the domain, the band ranges,
    every mapped column and the custom account fields."""
    from marketmap.ingest.schema import ACCOUNT_FIELDS, RANGE_COLUMNS

    return {*ACCOUNT_FIELDS, "domain", *RANGE_COLUMNS, *cfg.crm.export.account_columns,
            *(f.name for f in cfg.custom_fields.accounts)}  # fmt: skip


def field_problems(cfg: ClientConfig, source: str) -> list[tuple[str, str, str]]:
    """Rubric vectors and negative indicators that name an account field that does not exist, or a
    custom field of a type the vector cannot score."""
    known = account_field_names(cfg)
    names = ", ".join(sorted(known))
    custom = {f.name: f for f in cfg.custom_fields.accounts}
    out = []
    for r, rubric in enumerate(cfg.icp.rubrics):
        for kind, items in (("vectors", rubric.vectors), ("negative_indicators", rubric.negative_indicators)):
            for i, item in enumerate(items):
                key = f"icp.rubrics[{r}].{kind}[{i}].field"
                if item.field not in known:
                    elsewhere = [o for o in ("contacts", "opportunities")
                                 if item.field in {f.name for f in cfg.custom_fields.of(o)}]  # fmt: skip
                    hint = (f" ('{item.field}' is a custom field of {elsewhere[0]}: a rubric scores accounts, "
                            "declare it under custom_fields.accounts if the account export has it)") if elsewhere else ""  # fmt: skip
                    out.append((source, key,
                                f"unknown account field '{item.field}' ({item.name}){hint}; known fields: {names}"))  # fmt: skip
                elif kind == "vectors" and item.field in custom:
                    out.extend((source, key, m) for m in _custom_vector_problems(item, custom[item.field]))
    return out


def custom_field_problems(cfg: ClientConfig, source: str) -> list[tuple[str, str, str]]:
    """Custom fields named like a built-in field, names that repeat, one column feeding two fields."""
    from marketmap.ingest.schema import RESERVED  # a dict of names: light enough for parse time

    out = []
    for obj in ("accounts", "contacts", "opportunities"):
        fields = cfg.custom_fields.of(obj)
        seen: dict[str, int] = {}
        columns: dict[str, int] = {}
        for i, f in enumerate(fields):
            key = f"custom_fields.{obj}[{i}]"
            if f.name in RESERVED[obj]:
                out.append((source, f"{key}.name",
                            f"'{f.name}' is a built-in {obj} field; give the custom field another name (or map "
                            f"the built-in field's column with crm.export.{COLUMNS_KEY[obj]})"))  # fmt: skip
            elif f.name in seen:
                out.append((source, f"{key}.name", f"'{f.name}' is custom_fields.{obj}[{seen[f.name]}] too; "
                            "each custom field needs its own name"))  # fmt: skip
            if f.column in columns:
                out.append((source, f"{key}.column",
                            f"column '{f.column}' feeds custom_fields.{obj}[{columns[f.column]}] already; "
                            "one column is one field (a vector can use it under that name)"))  # fmt: skip
            seen.setdefault(f.name, i)
            columns.setdefault(f.column, i)
    return out


def _custom_vector_problems(vector, field: CustomField) -> list[str]:
    allowed = VECTOR_TYPES[vector.kind]
    if field.type not in allowed:
        fits = sorted(k for k, types in VECTOR_TYPES.items() if field.type in types)
        return [f"vector '{vector.name}' is {vector.kind} but custom field '{vector.field}' is {field.type}; "
                f"a {vector.kind} vector scores {' or '.join(allowed)} fields, a {field.type} field is scored by "
                f"{' or '.join(fits)} vectors (or change the field's type in custom_fields.accounts)"]  # fmt: skip
    if vector.kind == "any_of" and field.type == "list" and vector.separator != ";":
        return [f"vector '{vector.name}' splits on '{vector.separator}' but list field '{vector.field}' reaches "
                "vectors joined by ';' (the file's separator is custom_fields.accounts[].separator); "
                "drop the vector's separator"]  # fmt: skip
    return []


def push_source_problems(cfg: ClientConfig, source: str = "") -> list[tuple[str, str, str]]:
    """Push ``source`` fields Market Map has no value for, with the names that do exist.

    Not part of model validation: it reads the warehouse schema, which DAG parsing must not import.
    """
    from marketmap.crm.mapping import CONTACT_SCORE_SOURCES, SCORE_SOURCES, resolve_source
    from marketmap.warehouse import schema as t

    skip = {"client_id", "updated_at", "last_seen_run", "first_seen_run", "source_row", "source_file", "custom",
            "source_hash"}
    out = []
    for i, push in enumerate(cfg.push):
        for j, f in enumerate(push.fields):
            if resolve_source(cfg, push.object, f.source) is not None:
                continue
            if push.object == "account":
                scores = [*SCORE_SOURCES, *(r.tier_field for r in cfg.icp.rubrics if r.tier_field != "tier")]
                columns = [c.name for c in t.accounts.columns if c.name not in skip]
            else:
                scores = [*CONTACT_SCORE_SOURCES, "years_experience"]
                columns = [c.name for c in t.contacts.columns if c.name not in skip]
            custom = [c.name for c in cfg.custom_fields.of(push.object)]
            out.append((source, f"push[{i}].fields[{j}].source",
                        f"unknown source '{f.source}' for {push.object}s (known: score outputs "
                        f"{', '.join(scores)}; {push.object} fields {', '.join(columns)}"
                        f"{'; custom fields ' + ', '.join(custom) if custom else ''})"))  # fmt: skip
    return out


# --------------------------------------------------------------------------- credentials pasted into the file

# A key named like a credential (api_key, hubspot_token, db-password …), not user data such as "Secret Service"
_SECRET_KEY = re.compile(
    r"(?i)^[a-z0-9_-]*(password|passwd|secret|token|api[_-]?key|access[_-]?key|session[_-]?id|private[_-]?key)"
    r"[a-z0-9_-]*$"
)


def credential_problems(data: Any, source: str, path: str = "") -> list[tuple[str, str, str]]:
    """Key paths of values that look like a credential (never the value itself)."""
    from marketmap.redact import redact  # plain regexes, no Airflow

    found: list[tuple[str, str, str]] = []
    fix = "store it in an Airflow connection and give its id (conn_id); the value is not shown here"
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{path}.{k}" if path else str(k)
            if _SECRET_KEY.match(str(k)) and isinstance(v, str) and v.strip():
                found.append((source, key, f"looks like a credential ({k}); {fix}"))
            else:
                found.extend(credential_problems(v, source, key))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found.extend(credential_problems(v, source, f"{path}[{i}]"))
    elif isinstance(data, str) and redact(data) != data:
        found.append((source, path, f"looks like a credential (token, API key or password in a URL); {fix}"))
    return found


# --------------------------------------------------------------------------- loading


def _deep_merge(base: dict, override: dict) -> dict:
    """Nearest wins: mappings merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml parses, Python builds
    """Safe loader that refuses a key written twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; a key written next to it overrides, as YAML intends
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key}' (first on line {seen[key]}); keep one of them",
                        key_node.start_mark,
                    )  # fmt: skip
                seen[key] = key_node.start_mark.line + 1
            except TypeError:
                continue  # unhashable key: the base constructor reports it
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([(str(path), "", f"not UTF-8 text ({e.reason} at byte {e.start})")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([(str(path), "", f"invalid YAML: {where}{getattr(e, 'problem', e)}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [(str(path), "", f"expected a mapping at the top level, got {type(data).__name__}")]
        )
    return data


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif (
            p in ("bands", "categorical", "any_of", "recency", "boolean")
            and parts
            and parts[-1].endswith("]")
        ):
            continue  # discriminator tag pydantic inserts; not a key in the file
        elif isinstance(p, str) and p.startswith("function-"):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


# What to write for a required key that is missing (shown in the error message).
MISSING_EXAMPLES = {
    "client_id": "'client_id: acme' (lower case, the file name without .yaml)",
    "name": "'name: Acme Corp'",
    "crm": "'crm: {kind: csv}' (or kind: salesforce / hubspot with conn_id: <Airflow connection id>)",
    "kind": "'kind: csv' (crm: csv, salesforce or hubspot; a vector: bands, categorical, any_of, recency, boolean)",
    "icp": "'icp: {version: \"2026.01\", rubrics: [{vectors: [...]}]}'",
    "version": "'version: \"2026.01\"' (the rubric version; scores are stored per version)",
    "rubrics": "'rubrics: [{product: core, vectors: [...]}]'",
    "vectors": "'vectors: [{name: size, kind: bands, field: employees, weight: 100, bands: [{min: 50, points: 100}]}]'",
    "field": "'field: employees' (an account field; `marketmap validate` lists them)",
    "weight": "'weight: 20' (the vector's share of 100)",
    "valuation": "'valuation: {methods: [headcount], seat_price: 600, penetration: 0.08}'",
    "methods": "'methods: [headcount]' (revenue, headcount, product, like_accounts, extrapolation)",
    "slack": "'slack: {channels: {revops: \"#revops\", leadership: \"#leadership\", architect: \"#gtm-arch\"}}'",
    "channels": "'channels: {revops: \"#revops\", leadership: \"#leadership\", architect: \"#gtm-arch\"}'",
    "source": "'source: tier' (tier, fit_score, valuation … or a field of the object)",
    "crm_field": "'crm_field: Account_Tier__c' (the CRM field or property to write)",
    "points": "'points: 10'",
    "true_points": "'true_points: 10'",
    "bands": "'bands: [{min: 50, max: 200, points: 15}]'",
    "windows": "'windows: [{within_months: 12, points: 15}]'",
    "within_months": "'within_months: 12'",
    "action": "'action: exclude' (exclude, cap_tier or subtract)",
    "id": "'id: rep_001'",
    "p1": "'p1: 1'",
    "p2": "'p2: 2'",
    "contacts": "'contacts: 3'",
}


def _expected(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key (not part of the client config schema)"
    if kind == "missing":
        name = next((p for p in reversed(err["loc"]) if isinstance(p, str)), "")
        example = MISSING_EXAMPLES.get(name, f"{name}: <value>")
        return f"required key is missing: add it, e.g. {example}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{msg.replace('Input should be', 'expected')}, got {err.get('input')!r}"
    return (
        f"{msg}, got {err.get('input')!r}" if "input" in err and not isinstance(err["input"], dict) else msg
    )


def parse_client(data: dict, source: str, defaults: dict | None = None) -> ClientConfig:
    """Validate one client's mapping (merged over ``defaults``); raise ConfigError listing every problem."""
    from marketmap.redact import redact

    secrets = credential_problems(defaults or {}, DEFAULTS_FILE) + credential_problems(data, source)
    if secrets:  # before anything else: a message below could echo the value
        raise ConfigError(secrets)
    merged = _deep_merge(defaults or {}, data)
    try:
        cfg = ClientConfig.model_validate(merged, context={"custom_fields": _custom_names(merged)})
    except ValidationError as e:
        raise ConfigError(
            [(source, _loc(err["loc"]), redact(_expected(err))) for err in e.errors()]
        ) from None
    unknown = custom_field_problems(cfg, source) + field_problems(cfg, source)
    if unknown:
        raise ConfigError(unknown)
    return cfg


def _custom_names(data: dict) -> dict[str, set[str]]:
    """Custom field names per object as written (before validation), for the column-mapping check."""
    section = data.get("custom_fields") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return {}
    return {
        obj: {f["name"] for f in fields if isinstance(f, dict) and isinstance(f.get("name"), str)}
        for obj, fields in section.items()
        if isinstance(fields, list)
    }


def load_defaults(directory: Path | None = None) -> dict:
    path = (directory or clients_dir()) / DEFAULTS_FILE
    return _read_yaml(path) if path.exists() else {}


def load_client_file(path: Path, defaults: dict | None = None) -> ClientConfig:
    path = Path(path)
    if not re.match(CLIENT_ID_PATTERN, path.stem):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "client"
        if not suggestion[0].isalpha():
            suggestion = f"c_{suggestion}"
        raise ConfigError([(str(path), "", f"file name '{path.name}' is not a valid client id (lower-case letters, "
                            f"digits and _, starting with a letter, 2-40 characters): rename it, e.g. "
                            f"{suggestion[:40]}.yaml, and set client_id: {suggestion[:40]}")])  # fmt: skip
    if defaults is None:
        defaults = load_defaults(path.parent)
    data = _read_yaml(path)
    cfg = parse_client(data, str(path), defaults)
    if cfg.client_id != path.stem:
        raise ConfigError(
            [(str(path), "client_id", f"must equal the file name '{path.stem}', got '{cfg.client_id}'")]
        )
    return cfg


def client_files(directory: Path | None = None) -> list[Path]:
    """Client YAML files in sorted order (files starting with ``_`` are shared layers)."""
    d = directory or clients_dir()
    return sorted(p for p in d.glob("*.yaml") if not p.name.startswith("_"))


def load_client(client_id: str, directory: Path | None = None) -> ClientConfig:
    d = directory or clients_dir()
    path = d / f"{client_id}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in client_files(d)) or "none"
        raise ConfigError([(str(path), "", f"no such client '{client_id}' (known: {known})")])
    return load_client_file(path, load_defaults(d))


def load_all(directory: Path | None = None) -> dict[str, ClientConfig]:
    """Load every client config; raise one ConfigError listing the problems of all files."""
    d = directory or clients_dir()
    defaults = load_defaults(d)
    configs: dict[str, ClientConfig] = {}
    problems: list[tuple[str, str, str]] = []
    for path in client_files(d):
        try:
            configs[path.stem] = load_client_file(path, defaults)
        except ConfigError as e:
            problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return configs


def json_schema() -> dict:
    """JSON Schema of a client file, for editors (yaml-language-server)."""
    return ClientConfig.model_json_schema()


def effective_yaml(cfg: ClientConfig) -> str:
    """The merged, validated config as YAML (shown in each DAG's doc_md)."""
    # libyaml's dumper (shipped in the PyYAML wheel) is ~5x faster: this runs for every DAG at parse time
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(cfg.model_dump(mode="json", exclude_none=True), Dumper=dumper, sort_keys=False, width=100)
