"""Preflight: check the push mapping against the CRM's metadata before anything is written.

Every problem is collected and reported together (field missing, wrong type, read-only,
picklist value the mapping can produce but the CRM doesn't have — the "T1 vs Tier 1 leaves
the field blank" failure), so one run shows the admin everything to fix. Missing HubSpot
properties can be created on request.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from marketmap.config import PERSONA_TIERS, TIERS, ClientConfig, PushConfig, PushField
from marketmap.crm.base import CrmAdapter, CrmError, FieldMeta
from marketmap.crm.mapping import (
    EXCLUDED_PERSONA,
    OUT_TIER,
    crm_objects,
    effective_fields,
    identity_fields,
    resolve_source,
    source_type,
)
from marketmap.crm.values import translate

# Market Map value type -> CRM field types that can hold it
COMPATIBLE = {
    "picklist": {"picklist", "combobox", "multipicklist", "string", "textarea", "enumeration"},
    "number": {"double", "currency", "percent", "int", "long", "number"},
    "boolean": {"boolean", "bool", "checkbox"},
    "string": {
        "string",
        "textarea",
        "url",
        "email",
        "phone",
        "picklist",
        "combobox",
        "enumeration",
        "phone_number",
    },
}
PICKLIST_TYPES = {"picklist", "multipicklist", "enumeration"}
# HubSpot property type and fieldType for a property Market Map creates
HUBSPOT_NEW_PROPERTY = {
    "picklist": ("enumeration", "select"),
    "number": ("number", "number"),
    "boolean": ("bool", "booleancheckbox"),
    "string": ("string", "text"),
}


@dataclass
class PreflightReport:
    client_id: str
    crm: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    # what a CRM admin must create by hand (no permission / no API for it), one precise line each
    admin_todo: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = f"CRM preflight for {self.client_id} ({self.crm}): " + (
            "OK" if self.ok else f"{len(self.problems)} problem(s); the push will not start"
        )
        lines = [head]
        lines += [f"  PROBLEM  {p}" for p in self.problems]
        lines += [f"  warning  {w}" for w in self.warnings]
        lines += [f"  created  {c}" for c in self.created]
        lines += [f"  ADMIN    {c}" for c in self.admin_todo]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"ok": self.ok, **{k: v for k, v in self.__dict__.items()}}


# every value of a score output with a closed domain (abm_grade: tier digit + intent letter)
ABM_GRADES = tuple(f"{d}{c}" for d in "1234" for c in "-ABC")


def source_domain(f: PushField, push: PushConfig) -> tuple[str, ...] | None:
    """Every raw value the source can hold (None: open-ended), OUT/EXCLUDED included when the
    push sends them as a value (``out_of_scope: value``); blank/skip never send them."""
    name = f.source.split(".", 1)[-1]
    if name == "abm_grade":
        return ABM_GRADES
    if source_type(f.source) != "picklist":
        return None
    if f.source == "persona_tier":
        return PERSONA_TIERS + ((EXCLUDED_PERSONA,) if push.out_of_scope == "value" else ())
    return TIERS + ((OUT_TIER,) if push.out_of_scope == "value" else ())


def produced_values(f: PushField, push: PushConfig) -> set[str]:
    """Every value this mapping can send to a picklist field (OUT / EXCLUDED included when sent)."""
    norm = push.value_normalisation.get(f.crm_field)
    domain = source_domain(f, push)
    if domain is not None:
        values = {str(translate(v, f.picklist, norm)) for v in domain}
    else:
        values = set((f.picklist or {}).values())
    return values | set((norm or {}).values())


def _similar(name: str, meta: dict[str, FieldMeta]) -> str:
    close = difflib.get_close_matches(name, list(meta), n=3, cutoff=0.6)
    close += [m for m in meta if m.lower() == name.lower() and m not in close]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _check_picklist(
    where: str, f: PushField, push: PushConfig, m: FieldMeta, problems: list[str], warnings: list[str]
) -> None:
    if m.type not in PICKLIST_TYPES and not m.options:
        return
    if source_domain(f, push) is None and not f.picklist:
        warnings.append(
            f"{where} is a restricted picklist but '{f.source}' has no closed set of values: a value the "
            "picklist lacks is rejected record by record (add a picklist translation to be safe)"
        )
    missing = sorted(v for v in produced_values(f, push) if v not in m.options)
    if not missing:
        return
    label_of = dict(zip(m.option_labels, m.options, strict=False))
    hints = [f"'{v}' is the label of the value '{label_of[v]}'" for v in missing if v in label_of]
    problems.append(
        f"{where}: picklist value(s) {missing} that the mapping of '{f.source}' can produce do not exist "
        f"in the CRM, whose values are {list(m.options)}; records would get a blank or rejected value"
        + (f" ({'; '.join(hints)})" if hints else "")
        + " — fix the picklist translation in the push config or add the values in the CRM"
    )


def _check_push(
    cfg: ClientConfig,
    adapter: CrmAdapter,
    i: int,
    push: PushConfig,
    report: PreflightReport,
    create_missing: bool,
) -> None:
    obj = push.object
    crm_obj = crm_objects(cfg)[obj]
    fields = effective_fields(cfg, push)
    for f in fields:
        if resolve_source(cfg, obj, f.source) is None:
            report.problems.append(
                f"push[{i}] ({obj}) → {f.crm_field}: unknown source '{f.source}' (expected a score output such as "
                "tier, fit_score, valuation, white_space, persona_tier, persona_score, a rubric's tier_field, "
                f"'<product>.<name>', or a column of the {obj}s table)"
            )
    if not adapter.has_remote:
        return
    try:
        meta = adapter.describe(obj)
    except CrmError as e:
        report.problems.append(f"{crm_obj}: cannot read the CRM's field metadata: {e.message}")
        return
    for f in fields:
        where = f"{crm_obj}.{f.crm_field}"
        report.checked.append(where)
        want = source_type(f.source, cfg, obj)
        m = meta.get(f.crm_field)
        if m is None and create_missing:
            m = _create(adapter, obj, f, push, want, report)
            if m is not None:
                meta[f.crm_field] = m
        elif m is not None and create_missing and (m.type in PICKLIST_TYPES or m.options):
            m = _add_options(adapter, obj, f, push, m, report)
            meta[f.crm_field] = m
        if m is None:
            report.problems.append(
                f"{where} does not exist (mapped from '{f.source}'){_similar(f.crm_field, meta)}"
            )
            todo = _todo_create(
                crm_obj, f, want, sorted(produced_values(f, push)) if want == "picklist" else []
            )
            if todo not in report.admin_todo:
                report.admin_todo.append(todo)
            continue
        if m.type not in COMPATIBLE[want]:
            report.problems.append(
                f"{where} is a {m.type} field but '{f.source}' is a {want} value "
                f"(expected one of: {', '.join(sorted(COMPATIBLE[want]))})"
            )
        if push.mode != "create_only" and not m.updateable:
            report.problems.append(f"{where} is read-only in the CRM (not updateable); it cannot be pushed")
        if push.mode != "update_only" and not m.createable:
            report.problems.append(f"{where} cannot be set on new records (not createable)")
        _check_picklist(where, f, push, m, report.problems, report.warnings)
        for raw in push.value_normalisation.get(f.crm_field, {}):
            if m.type in PICKLIST_TYPES and raw in m.options:
                report.warnings.append(f"{where}: value normalisation rewrites '{raw}', a valid CRM value")
    pf = push.prevent_override_field
    if pf:
        m = meta.get(pf)
        if m is None:
            report.problems.append(
                f"{crm_obj}.{pf} (prevent_override_field) does not exist{_similar(pf, meta)}"
            )
        elif m.type not in COMPATIBLE["boolean"]:
            report.problems.append(
                f"{crm_obj}.{pf} (prevent_override_field) is a {m.type} field, expected a checkbox"
            )
    ext = push.external_id_field
    if ext:
        m = meta.get(ext)
        if m is None:
            report.problems.append(f"{crm_obj}.{ext} (external_id_field) does not exist{_similar(ext, meta)}")
        elif not m.unique:
            report.problems.append(
                f"{crm_obj}.{ext} (external_id_field) is not an External ID / unique-value field, so upserts "
                "on it cannot be trusted to find one record"
            )
    ident = identity_fields(cfg, obj)
    needed = ("name", "website") if obj == "account" else ("email", "last_name")
    for canonical in needed:
        name = ident.get(canonical)
        if name and name not in meta and push.mode != "update_only":
            report.problems.append(f"{crm_obj}.{name} ({canonical}, needed to create records) does not exist")
    lookups = ("website",) if obj == "account" else ("email", "linkedin_url")
    for canonical in lookups:
        name = ident.get(canonical)
        if name and name not in meta:
            report.warnings.append(f"{crm_obj}.{name} does not exist: look-ups by {canonical} are skipped")


SALESFORCE_NEW_FIELD = {"picklist": "Picklist", "number": "Number(16, 2)", "boolean": "Checkbox",
                        "string": "Text(255)"}  # fmt: skip


def _todo_create(crm_obj: str, f: PushField, want: str, options: list[str]) -> str:
    kind = SALESFORCE_NEW_FIELD[want]
    vals = f", restricted values {options}" if options else ""
    return (f"create field {crm_obj}.{f.crm_field} (type {kind}{vals}, visible to the Market Map integration "
            f"user, editable) — Setup > Object Manager > {crm_obj} > Fields & Relationships > New")  # fmt: skip


def _create(
    adapter: CrmAdapter, obj: str, f: PushField, push: PushConfig, want: str, report: PreflightReport
) -> FieldMeta | None:
    options = sorted(produced_values(f, push)) if want == "picklist" else []
    label = f.crm_field.replace("__c", "").replace("_", " ").strip().title()
    try:
        adapter.create_field(obj, f.crm_field, label, want, options)
    except CrmError as e:
        report.warnings.append(f"could not create field {f.crm_field}: {e.message}")
        report.admin_todo.append(_todo_create(crm_objects_of(adapter, obj), f, want, options))
        return None
    kind = HUBSPOT_NEW_PROPERTY[want][0] if adapter.kind == "hubspot" else SALESFORCE_NEW_FIELD[want]
    report.created.append(f"{obj}.{f.crm_field} ({kind})")
    return adapter.describe(obj).get(f.crm_field)


def crm_objects_of(adapter: CrmAdapter, obj: str) -> str:
    return getattr(adapter, "objects", {}).get(obj, obj)


def _add_options(
    adapter: CrmAdapter, obj: str, f: PushField, push: PushConfig, m: FieldMeta, report: PreflightReport
) -> FieldMeta:
    """Add the picklist values the mapping produces but the CRM lacks (the check below then passes)."""
    missing = sorted(v for v in produced_values(f, push) if v not in m.options)
    if not missing:
        return m
    try:
        adapter.add_options(obj, f.crm_field, m, missing)
    except CrmError as e:
        report.admin_todo.append(
            f"add the values {missing} to the picklist {crm_objects_of(adapter, obj)}.{f.crm_field} "
            f"({e.message})"
        )
        return m
    report.created.append(f"{obj}.{f.crm_field}: picklist values {missing}")
    return adapter.describe(obj).get(f.crm_field) or m


def preflight(cfg: ClientConfig, adapter: CrmAdapter, *, create_missing: bool = False) -> PreflightReport:
    """Check every push mapping of the client against the CRM; list all problems together.

    Every value the mapping can produce is checked against restricted picklists, ``OUT`` /
    ``EXCLUDED`` included when ``out_of_scope: value`` sends them.

    ``create_missing=True`` (or a push's ``create_missing_fields``) creates missing fields
    and missing picklist values: HubSpot through the properties API, Salesforce through the
    Tooling API when the user may; what cannot be created lands in ``report.admin_todo``,
    one precise line per field, next to the problem. The push must not start unless
    ``report.ok``.
    """
    report = PreflightReport(cfg.client_id, cfg.crm.kind)
    if not cfg.push:
        report.warnings.append("no push mappings configured: nothing will be written to the CRM")
    for i, push in enumerate(cfg.push):
        _check_push(cfg, adapter, i, push, report, create_missing or push.create_missing_fields)
    return report
