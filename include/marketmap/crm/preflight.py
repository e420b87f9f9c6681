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
from marketmap.crm.mapping import crm_objects, effective_fields, identity_fields, resolve_source, source_type
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
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"ok": self.ok, **{k: v for k, v in self.__dict__.items()}}


def produced_values(f: PushField, push: PushConfig) -> set[str]:
    """Every value this mapping can send to a picklist field."""
    norm = push.value_normalisation.get(f.crm_field)
    kind = source_type(f.source)
    if kind == "picklist":
        domain = PERSONA_TIERS if f.source == "persona_tier" else TIERS
        values = {str(translate(v, f.picklist, norm)) for v in domain}
    else:
        values = set((f.picklist or {}).values())
    return values | set((norm or {}).values())


def _similar(name: str, meta: dict[str, FieldMeta]) -> str:
    close = difflib.get_close_matches(name, list(meta), n=3, cutoff=0.6)
    close += [m for m in meta if m.lower() == name.lower() and m not in close]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _check_picklist(where: str, f: PushField, push: PushConfig, m: FieldMeta, problems: list[str]) -> None:
    if m.type not in PICKLIST_TYPES and not m.options:
        return
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
        want = source_type(f.source)
        m = meta.get(f.crm_field)
        if m is None and create_missing and adapter.kind == "hubspot":
            m = _create(adapter, obj, f, push, want, report)
            if m is not None:
                meta[f.crm_field] = m
        if m is None:
            report.problems.append(
                f"{where} does not exist (mapped from '{f.source}'){_similar(f.crm_field, meta)}"
            )
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
        _check_picklist(where, f, push, m, report.problems)
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


def _create(
    adapter: CrmAdapter, obj: str, f: PushField, push: PushConfig, want: str, report: PreflightReport
) -> FieldMeta | None:
    options = sorted(produced_values(f, push)) if want == "picklist" else []
    label = f.crm_field.replace("_", " ").strip().title()
    try:
        adapter.create_field(obj, f.crm_field, label, want, options)
    except CrmError as e:
        report.problems.append(f"could not create property {f.crm_field}: {e.message}")
        return None
    report.created.append(f"{obj}.{f.crm_field} ({HUBSPOT_NEW_PROPERTY[want][0]})")
    return adapter.describe(obj).get(f.crm_field)


def preflight(cfg: ClientConfig, adapter: CrmAdapter, *, create_missing: bool = False) -> PreflightReport:
    """Check every push mapping of the client against the CRM; list all problems together.

    ``create_missing=True`` creates missing HubSpot properties (with the picklist options
    the mapping produces) instead of reporting them. The push must not start unless
    ``report.ok``.
    """
    report = PreflightReport(cfg.client_id, cfg.crm.kind)
    if not cfg.push:
        report.warnings.append("no push mappings configured: nothing will be written to the CRM")
    for i, push in enumerate(cfg.push):
        _check_push(cfg, adapter, i, push, report, create_missing)
    return report
