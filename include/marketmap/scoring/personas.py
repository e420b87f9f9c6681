"""Persona scoring: contacts scored 0-100 against the client's persona matrix (SPEC §6).

The rubric is seed 000's example persona rubric, scaled by ``PersonaConfig.weights``
(default title 30, seniority 25, department 20, geography 15, tenure 10). Each vector
gives a share of its weight:

=============  ===============================================================
title          exact 1, adjacent 1/2, broad 1/6, none 0 (30 / 15 / 5 / 0)
seniority      C-Level or VP 1, Director 0.6, Manager 0.2, other 0 (25 / 15 / 5)
department     core 1, adjacent 1/2, any other known department 1/4 (20 / 10 / 5)
geography      primary 1, secondary 2/3, any other known country 1/3 (15 / 10 / 5)
tenure         in role < 1 year 1, 1-3 years 0.7, 3+ years 0.3, unknown 0 (10 / 7 / 3)
=============  ===============================================================

Titles are compared on their normalised form (:mod:`marketmap.scoring.titles`), after
dropping modifiers that do not change the role (senior, global, regional…), so "SVP
Global Sales" matches a configured "VP Sales". A title matches a level when it equals a
configured title of that level; failing that, when it contains one as a whole phrase
("VP Revenue Operations & Strategy" contains "VP Revenue Operations"). Equality is
tried on all levels before containment, so an exact-equal adjacent title stays adjacent.

Persona tier: P1 at or above ``thresholds["P1"]``, P2 at or above ``thresholds["P2"]``,
else P3. A title containing a negative title (whole word, case-insensitive, e.g.
"Intern" but not "International") is ``EXCLUDED`` whatever its score; it is checked on
the raw and on the normalised title, so "Asst. to the CEO" meets a negative "Assistant"
(and so does "Assistant Vice President": negative titles are the client's blunt tool).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from marketmap.config import CoverageTarget, PersonaConfig
from marketmap.frames import column as _column
from marketmap.frames import truthy as _truthy
from marketmap.scoring.titles import canonical_department, clean_title, department_of, seniority_of

PERSONA_TIERS = ("P1", "P2", "P3")
EXCLUDED = "EXCLUDED"

TITLE_POINTS = {"exact": 1.0, "adjacent": 0.5, "broad": 1 / 6, "none": 0.0}
SENIORITY_POINTS = {"C-Level": 1.0, "VP": 1.0, "Director": 0.6, "Manager": 0.2}
DEPARTMENT_POINTS = {"core": 1.0, "adjacent": 0.5, "peripheral": 0.25}
GEOGRAPHY_POINTS = {"primary": 1.0, "secondary": 2 / 3, "tertiary": 1 / 3}
TENURE_POINTS = ((1.0, 1.0), (3.0, 0.7), (float("inf"), 0.3))  # (years below, share)
VECTORS = ("title", "seniority", "department", "geography", "tenure")

# Words that qualify a title without changing the role it names.
TITLE_MODIFIERS = frozenset(
    {"senior", "global", "worldwide", "international", "group", "regional", "interim", "acting", "corporate"}
)

# --------------------------------------------------------------------------- countries

# fmt: off
EU_EEA = frozenset(
    {
        "austria", "belgium", "bulgaria", "croatia", "cyprus", "czechia", "denmark", "estonia", "finland",
        "france", "germany", "greece", "hungary", "ireland", "italy", "latvia", "lithuania", "luxembourg",
        "malta", "netherlands", "poland", "portugal", "romania", "slovakia", "slovenia", "spain", "sweden",
        # EEA members outside the EU
        "iceland", "liechtenstein", "norway",
    }
)

# ISO 3166 alpha-2/alpha-3 codes and common spellings -> canonical lower-case name.
_COUNTRY_ALIASES: dict[str, str] = {
    "us": "united states", "usa": "united states", "u s": "united states", "u s a": "united states",
    "united states of america": "united states", "america": "united states",
    "uk": "united kingdom", "gb": "united kingdom", "gbr": "united kingdom",
    "great britain": "united kingdom",
    "england": "united kingdom", "scotland": "united kingdom", "wales": "united kingdom",
    "northern ireland": "united kingdom",
    "ca": "canada", "can": "canada", "au": "australia", "aus": "australia", "nz": "new zealand",
    "ch": "switzerland", "che": "switzerland", "schweiz": "switzerland", "suisse": "switzerland",
    "at": "austria", "aut": "austria", "osterreich": "austria", "österreich": "austria",
    "be": "belgium", "bel": "belgium", "belgique": "belgium", "belgie": "belgium", "belgië": "belgium",
    "bg": "bulgaria", "bgr": "bulgaria",
    "hr": "croatia", "hrv": "croatia", "hrvatska": "croatia",
    "cy": "cyprus", "cyp": "cyprus",
    "cz": "czechia", "cze": "czechia", "czech republic": "czechia",
    "dk": "denmark", "dnk": "denmark", "danmark": "denmark",
    "ee": "estonia", "est": "estonia",
    "fi": "finland", "fin": "finland", "suomi": "finland",
    "fr": "france", "fra": "france",
    "de": "germany", "deu": "germany", "ger": "germany", "deutschland": "germany",
    "gr": "greece", "el": "greece", "grc": "greece", "hellas": "greece",
    "hu": "hungary", "hun": "hungary", "magyarorszag": "hungary", "magyarország": "hungary",
    "ie": "ireland", "irl": "ireland", "eire": "ireland", "éire": "ireland", "republic of ireland": "ireland",
    "it": "italy", "ita": "italy", "italia": "italy",
    "lv": "latvia", "lva": "latvia", "lt": "lithuania", "ltu": "lithuania",
    "lu": "luxembourg", "lux": "luxembourg", "mt": "malta", "mlt": "malta",
    "nl": "netherlands", "nld": "netherlands", "the netherlands": "netherlands", "holland": "netherlands",
    "nederland": "netherlands",
    "pl": "poland", "pol": "poland", "polska": "poland",
    "pt": "portugal", "prt": "portugal",
    "ro": "romania", "rou": "romania", "românia": "romania",
    "sk": "slovakia", "svk": "slovakia", "slovensko": "slovakia",
    "si": "slovenia", "svn": "slovenia", "slovenija": "slovenia",
    "es": "spain", "esp": "spain", "espana": "spain", "españa": "spain",
    "se": "sweden", "swe": "sweden", "sverige": "sweden",
    "is": "iceland", "isl": "iceland", "li": "liechtenstein", "lie": "liechtenstein",
    "no": "norway", "nor": "norway", "norge": "norway",
}
# fmt: on

_COUNTRY_PUNCT = re.compile(r"[.\s]+")


def canonical_country(value: Any) -> str | None:
    """Lower-case canonical country name ("US", "U.S.A." -> "united states"); None if blank."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = _COUNTRY_PUNCT.sub(" ", str(value).strip().lower()).strip()
    if not text:
        return None
    return _COUNTRY_ALIASES.get(text, text)


def _obj(series: pd.Series) -> pd.Series:
    """Object-dtype copy with None for every missing value (safe as a dict key)."""
    s = series.astype(object)
    return s.where(s.notna(), None)


def _canonical_countries(values: pd.Series) -> pd.Series:
    values = _obj(values)
    uniq = {v: canonical_country(v) for v in pd.unique(values)}
    return values.map(lambda v: uniq[v]).astype(object)


# --------------------------------------------------------------------------- helpers


def _blank(series: pd.Series) -> pd.Series:
    s = series.astype(object)
    return s.isna() | s.map(lambda v: isinstance(v, str) and not v.strip())


def _core(clean: str) -> str:
    return " ".join(w for w in clean.split() if w not in TITLE_MODIFIERS)


def _contains_phrase(text: str, phrase: str) -> bool:
    return bool(phrase) and f" {phrase} " in f" {text} "


def _title_levels(cfg: PersonaConfig) -> list[tuple[str, set[str]]]:
    aliases = cfg.title_aliases
    return [
        (level, {c for t in getattr(cfg.titles, level) if (c := _core(clean_title(t, aliases)))})
        for level in ("exact", "adjacent", "broad")
    ]


def _title_match(clean: str, levels: list[tuple[str, set[str]]]) -> str:
    core = _core(clean)
    if not core:
        return "none"
    for level, titles in levels:
        if core in titles:
            return level
    for level, titles in levels:
        if any(_contains_phrase(core, t) for t in titles):
            return level
    return "none"


def _negative_regex(negatives: Iterable[str]) -> re.Pattern[str] | None:
    words = [n.strip().lower() for n in negatives if n and n.strip()]
    if not words:
        return None
    return re.compile(r"(?<![0-9a-z])(?:" + "|".join(map(re.escape, words)) + r")(?![0-9a-z])")


# Where a tenure share changes, in days before the run date (scoring.incremental re-scores the
# contacts whose start date crossed one between two runs): started, 1 year, 3 years.
TENURE_BOUNDARIES_DAYS = (0.0, 365.25, 3 * 365.25)


def _tenure_share(start: pd.Series, run_date: dt.date) -> pd.Series:
    started = pd.to_datetime(start, errors="coerce", utc=True).dt.tz_localize(None)
    years = (pd.Timestamp(run_date) - started).dt.days / 365.25
    share = pd.Series(0.0, index=start.index)
    known = years.notna() & (years >= 0)  # a start date after the run date is a data error: unknown
    share[known & (years < 1)] = TENURE_POINTS[0][1]
    share[known & (years >= 1) & (years < 3)] = TENURE_POINTS[1][1]
    share[known & (years >= 3)] = TENURE_POINTS[2][1]
    return share


# --------------------------------------------------------------------------- scoring


def score_contacts(contacts: pd.DataFrame, cfg: PersonaConfig, run_date: dt.date) -> pd.DataFrame:
    """Score contacts against the persona matrix.

    Args:
        contacts: canonical contacts (``title``, ``department``, ``country``,
            ``role_start_date``; missing columns count as blank).
        cfg: the client's persona configuration.
        run_date: the day tenure is measured at.

    Returns:
        A copy of ``contacts`` plus ``title_clean``, ``seniority``, ``department_norm``,
        ``title_match``, ``ppts_title``, ``ppts_seniority``, ``ppts_department``,
        ``ppts_geography``, ``ppts_tenure``, ``persona_score`` (0-100, one decimal) and
        ``persona_tier`` (P1/P2/P3/EXCLUDED).
    """
    out = contacts.copy()
    aliases = cfg.title_aliases
    weights = {v: float(cfg.weights.get(v, 0)) for v in VECTORS}
    levels = _title_levels(cfg)
    negative = _negative_regex(cfg.negative_titles)

    # Titles: every distinct raw title is normalised and matched once.
    titles = _obj(_column(out, "title"))
    per_title: dict[Any, tuple[str, str | None, str | None, str, bool]] = {}
    for raw in pd.unique(titles):
        clean = clean_title(raw, aliases)
        neg = bool(
            negative and raw is not None and (negative.search(str(raw).lower()) or negative.search(clean))
        )
        per_title[raw] = (clean, seniority_of(clean), department_of(clean), _title_match(clean, levels), neg)
    info = titles.map(lambda t: per_title[t])
    out["title_clean"] = info.map(lambda t: t[0]).astype(object)
    out["seniority"] = _obj(info.map(lambda t: t[1]))
    title_dept = _obj(info.map(lambda t: t[2]))
    out["title_match"] = info.map(lambda t: t[3]).astype(object)
    is_negative = info.map(lambda t: t[4]).astype(bool)

    # Department: the CRM value when present (canonicalised), else derived from the title.
    crm_dept = _obj(_column(out, "department"))
    dept_map = {v: canonical_department(v, aliases) for v in pd.unique(crm_dept)}
    department = crm_dept.map(lambda v: dept_map[v]).astype(object)
    out["department_norm"] = _obj(department.where(department.notna(), title_dept))

    core = {d.casefold() for d in (canonical_department(x, aliases) for x in cfg.core_departments) if d}
    adjacent = {
        d.casefold() for d in (canonical_department(x, aliases) for x in cfg.adjacent_departments) if d
    }
    dept_key = out["department_norm"].map(lambda d: d.casefold() if isinstance(d, str) else None)
    dept_share = np.select(
        [dept_key.isin(core), dept_key.isin(adjacent), dept_key.notna()],
        [DEPARTMENT_POINTS["core"], DEPARTMENT_POINTS["adjacent"], DEPARTMENT_POINTS["peripheral"]],
        0.0,
    )

    country = _canonical_countries(_column(out, "country"))
    primary = {canonical_country(c) for c in cfg.primary_geographies} - {None}
    secondary = {canonical_country(c) for c in cfg.secondary_geographies} - {None}
    geo_share = np.select(
        [country.isin(primary), country.isin(secondary), country.notna()],
        [GEOGRAPHY_POINTS["primary"], GEOGRAPHY_POINTS["secondary"], GEOGRAPHY_POINTS["tertiary"]],
        0.0,
    )

    shares = {
        "title": out["title_match"].map(TITLE_POINTS).astype(float).to_numpy(),
        "seniority": out["seniority"].map(SENIORITY_POINTS).astype(float).fillna(0.0).to_numpy(),
        "department": dept_share,
        "geography": geo_share,
        "tenure": _tenure_share(_column(out, "role_start_date"), run_date).to_numpy(),
    }
    total = np.zeros(len(out))
    for vector in VECTORS:
        points = shares[vector] * weights[vector]
        out[f"ppts_{vector}"] = np.round(points, 2)
        total += points
    out["persona_score"] = np.round(total, 1)
    p1, p2 = float(cfg.thresholds["P1"]), float(cfg.thresholds["P2"])
    # a small tolerance so 69.99999 from float weights does not miss a 70 threshold
    tier = np.select([total >= p1 - 1e-9, total >= p2 - 1e-9], ["P1", "P2"], "P3")
    out["persona_tier"] = np.where(is_negative.to_numpy(), EXCLUDED, tier)
    return out


# --------------------------------------------------------------------------- distribution


def persona_distribution(
    scored: pd.DataFrame,
    p1_sweet: tuple[float, float] = (0.15, 0.25),
    p2_sweet: tuple[float, float] = (0.40, 0.50),
) -> dict:
    """Persona tier shares and seed 000's threshold check.

    80%+ P1 is too loose, 5% or less too tight; the sweet spot is 15-25% P1 and 40-50% P2.
    Shares are of scored contacts, excluded personas left out.

    Returns:
        ``{"contacts", "excluded", "counts": {P1, P2, P3}, "shares": {P1, P2, P3},
        "verdict", "message"}``; verdict is "too loose", "too tight", "sweet spot",
        "outside sweet spot" or "no contacts".
    """
    return distribution_of_counts(
        scored["persona_tier"].astype(object).value_counts().to_dict(), p1_sweet, p2_sweet
    )


def distribution_of_counts(
    tier_counts: Mapping[Any, int],
    p1_sweet: tuple[float, float] = (0.15, 0.25),
    p2_sweet: tuple[float, float] = (0.40, 0.50),
) -> dict:
    """:func:`persona_distribution` from contacts counted per persona tier (summed over chunks)."""
    excluded = int(tier_counts.get(EXCLUDED, 0))
    counts = {t: int(tier_counts.get(t, 0)) for t in PERSONA_TIERS}
    n = sum(int(v) for k, v in tier_counts.items() if k != EXCLUDED)
    shares = {t: round(counts[t] / n, 4) if n else 0.0 for t in PERSONA_TIERS}
    p1, p2 = shares["P1"], shares["P2"]
    if n == 0:
        verdict, message = "no contacts", "no scored contacts (all excluded or none loaded)"
    elif p1 >= 0.8:
        verdict = "too loose"
        message = f"{p1:.0%} of contacts are P1 (80%+ means thresholds or titles are too loose)"
    elif p1 <= 0.05:
        verdict = "too tight"
        message = f"only {p1:.0%} of contacts are P1 (5% or less means thresholds or titles are too tight)"
    elif p1_sweet[0] <= p1 <= p1_sweet[1] and p2_sweet[0] <= p2 <= p2_sweet[1]:
        verdict = "sweet spot"
        message = f"{p1:.0%} P1 and {p2:.0%} P2: inside the 15-25% / 40-50% sweet spot"
    else:
        verdict = "outside sweet spot"
        message = (
            f"{p1:.0%} P1 and {p2:.0%} P2; the sweet spot is {p1_sweet[0]:.0%}-{p1_sweet[1]:.0%} P1 "
            f"and {p2_sweet[0]:.0%}-{p2_sweet[1]:.0%} P2"
        )
    return {
        "contacts": n,
        "excluded": excluded,
        "counts": counts,
        "shares": shares,
        "verdict": verdict,
        "message": message,
    }


# --------------------------------------------------------------------------- coverage


def _target(targets: Mapping[str, CoverageTarget | Mapping[str, int]], tier: str) -> tuple[int, int, int]:
    t = targets.get(tier)
    if t is None:
        return 0, 0, 0
    if isinstance(t, Mapping):
        return int(t.get("p1", 0)), int(t.get("p2", 0)), int(t.get("contacts", 0))
    return t.p1, t.p2, t.contacts


def coverage(
    scored_contacts: pd.DataFrame,
    accounts: pd.DataFrame,
    targets: Mapping[str, CoverageTarget | Mapping[str, int]],
) -> pd.DataFrame:
    """Persona coverage per account against the targets of its tier.

    Excluded personas do not count. A P1 persona beyond the P1 target fills a P2 slot
    (a surplus decision-maker is at least as useful as a Tier-2 persona).

    Returns:
        One row per account: ``account_key``, ``tier``, ``p1``, ``p2``, ``contacts``,
        ``target_p1``, ``target_p2``, ``target_contacts``, ``gap_p1``, ``gap_p2``,
        ``gap_contacts``, ``meets_target``. Tiers without targets (OUT) get zero targets.
    """
    return coverage_of_counts(persona_counts(scored_contacts), accounts, targets)


def persona_counts(scored_contacts: pd.DataFrame) -> pd.DataFrame:
    """Contacts per account and persona tier (columns P1, P2, P3; excluded personas left out).

    Counts of several chunks of contacts add up: ``pd.concat(parts).groupby(level=0).sum()``.
    """
    valid = scored_contacts[scored_contacts["persona_tier"] != EXCLUDED]
    # a group-by size, not pd.crosstab: crosstab aggregates group by group in Python (1.3 s per 250k)
    counts = valid.groupby(["account_key", "persona_tier"]).size().unstack(fill_value=0)
    for t in PERSONA_TIERS:
        if t not in counts.columns:
            counts[t] = 0
    return counts[list(PERSONA_TIERS)]


def coverage_of_counts(
    counts: pd.DataFrame,
    accounts: pd.DataFrame,
    targets: Mapping[str, CoverageTarget | Mapping[str, int]],
) -> pd.DataFrame:
    """:func:`coverage` from :func:`persona_counts` (possibly summed over chunks of contacts)."""
    per_account = pd.DataFrame(
        {"p1": counts["P1"], "p2": counts["P2"], "contacts": counts[list(PERSONA_TIERS)].sum(axis=1)}
    )
    cov = accounts[["account_key", "tier"]].drop_duplicates("account_key").copy()
    cov = cov.merge(per_account, left_on="account_key", right_index=True, how="left")
    for c in ("p1", "p2", "contacts"):
        cov[c] = cov[c].fillna(0).astype(int)
    tiers = cov["tier"].astype(object)
    tgt = {t: _target(targets, t) for t in pd.unique(tiers)}
    cov["target_p1"] = tiers.map(lambda t: tgt[t][0]).astype(int)
    cov["target_p2"] = tiers.map(lambda t: tgt[t][1]).astype(int)
    cov["target_contacts"] = tiers.map(lambda t: tgt[t][2]).astype(int)
    surplus_p1 = (cov["p1"] - cov["target_p1"]).clip(lower=0)
    cov["gap_p1"] = (cov["target_p1"] - cov["p1"]).clip(lower=0)
    cov["gap_p2"] = (cov["target_p2"] - cov["p2"] - surplus_p1).clip(lower=0)
    cov["gap_contacts"] = (cov["target_contacts"] - cov["contacts"]).clip(lower=0)
    cov["meets_target"] = (cov[["gap_p1", "gap_p2", "gap_contacts"]].sum(axis=1) == 0).astype(bool)
    return cov.reset_index(drop=True)


def coverage_summary(
    cov: pd.DataFrame,
    p1_coverage_min: float = 0.5,
    t1_min_contacts: int = 4,
    tighten_avg: float = 30,
    tighten_max: int = 50,
) -> dict:
    """Seed 000's persona refinement triggers on a :func:`coverage` frame.

    Under ``p1_coverage_min`` of T1 accounts with a P1 persona -> "broaden titles";
    an average of ``tighten_avg``+ contacts per account (accounts with contacts) or
    ``tighten_max``+ at one account -> "tighten". The goal is 5-15 contacts per T1 account.
    ``p1_coverage_min`` and ``t1_min_contacts`` come from ``MaintenanceConfig``.

    Returns:
        ``{"t1_accounts", "t1_with_p1", "t1_p1_share", "avg_contacts_per_t1",
        "t1_below_min_contacts", "t1_min_contacts", "avg_contacts_per_account",
        "max_contacts_at_account", "max_contacts_account", "meets_target_share": {tier},
        "verdicts": [...], "messages": [...]}``; verdicts are "broaden titles", "tighten" or "ok".
    """
    t1 = cov[cov["tier"] == "T1"]
    n_t1 = int(len(t1))
    with_p1 = int((t1["p1"] > 0).sum())
    share = round(with_p1 / n_t1, 4) if n_t1 else None
    avg_t1 = round(float(t1["contacts"].mean()), 2) if n_t1 else None
    below = int((t1["contacts"] < t1_min_contacts).sum())
    with_contacts = cov[cov["contacts"] > 0]
    avg_all = round(float(with_contacts["contacts"].mean()), 2) if len(with_contacts) else 0.0
    max_n = int(cov["contacts"].max()) if len(cov) else 0
    max_key = cov.loc[cov["contacts"].idxmax(), "account_key"] if len(cov) and max_n else None
    meets = {
        t: round(float(g["meets_target"].mean()), 4)
        for t, g in cov.groupby("tier", sort=True)
        if t in ("T1", "T2", "T3")
    }
    verdicts, messages = [], []
    if share is not None and share < p1_coverage_min:
        verdicts.append("broaden titles")
        messages.append(
            f"only {with_p1:,} of {n_t1:,} T1 accounts ({share:.0%}) have a P1 persona "
            f"(minimum {p1_coverage_min:.0%}): broaden the title criteria"
        )
    if avg_all >= tighten_avg or max_n >= tighten_max:
        verdicts.append("tighten")
        messages.append(
            f"{avg_all:g} contacts per account on average, {max_n:,} at the largest "
            f"(tighten at {tighten_avg:g} average or {tighten_max} at one): tighten seniority, geography "
            "or department filters"
        )
    if below:
        messages.append(f"{below:,} T1 accounts have fewer than {t1_min_contacts} contacts")
    if avg_t1 is not None and not 5 <= avg_t1 <= 15:
        messages.append(f"{avg_t1:g} contacts per T1 account on average (goal 5-15)")
    if not verdicts:
        verdicts.append("ok")
    return {
        "t1_accounts": n_t1,
        "t1_with_p1": with_p1,
        "t1_p1_share": share,
        "avg_contacts_per_t1": avg_t1,
        "t1_below_min_contacts": below,
        "t1_min_contacts": t1_min_contacts,
        "avg_contacts_per_account": avg_all,
        "max_contacts_at_account": max_n,
        "max_contacts_account": None if max_key is None else str(max_key),
        "meets_target_share": meets,
        "verdicts": verdicts,
        "messages": messages,
    }


# --------------------------------------------------------------------------- priority

# Seed 000 "Combining Account + Persona Tiers for Prioritization". Cells the seed does
# not name (T1xP3, T2xP3) are low: a weak persona is not worth a rep's time yet.
PRIORITY_MATRIX: dict[tuple[str, str], str] = {
    ("T1", "P1"): "highest: AE immediate outreach",
    ("T1", "P2"): "high: multi-thread",
    ("T1", "P3"): "low: supporting contact, find a P1 persona",
    ("T2", "P1"): "high: SDR sequence",
    ("T2", "P2"): "medium: SDR sequence, lower priority",
    ("T2", "P3"): "low: marketing nurture",
    ("T3", "P1"): "low: marketing nurture",
    ("T3", "P2"): "low: marketing nurture",
    ("T3", "P3"): "low: marketing nurture",
}
PRIORITY_EXCLUDED = "none: excluded persona"
PRIORITY_OUT = "none: account out of scope"


def _priority_one(account_tier: Any, persona_tier: Any) -> str:
    if persona_tier == EXCLUDED:
        return PRIORITY_EXCLUDED
    return PRIORITY_MATRIX.get((account_tier, persona_tier), PRIORITY_OUT)


def priority(account_tier: Any, persona_tier: Any) -> str | pd.Series:
    """Outreach priority of an account tier x persona tier (scalars or aligned Series).

    T1xP1 "highest: AE immediate outreach", T1xP2 "high: multi-thread", T2xP1 "high:
    SDR sequence", T2xP2 "medium: …", T3xany "low: marketing nurture"; excluded
    personas and OUT/blank accounts get "none: …".
    """
    if not isinstance(account_tier, pd.Series) and not isinstance(persona_tier, pd.Series):
        return _priority_one(account_tier, persona_tier)
    index = account_tier.index if isinstance(account_tier, pd.Series) else persona_tier.index
    a = account_tier if isinstance(account_tier, pd.Series) else pd.Series(account_tier, index=index)
    p = persona_tier if isinstance(persona_tier, pd.Series) else pd.Series(persona_tier, index=index)
    pairs = pd.MultiIndex.from_arrays([a.astype(object).to_numpy(), p.astype(object).to_numpy()])
    labels = {pair: _priority_one(*pair) for pair in pairs.unique()}
    return pd.Series([labels[pair] for pair in pairs], index=index, dtype=object)


# --------------------------------------------------------------------------- GDPR


def gdpr_mask(contacts: pd.DataFrame, countries: Iterable[str] = EU_EEA) -> pd.Series:
    """True for contacts whose country is in ``countries`` (names or ISO codes)."""
    region = {canonical_country(c) for c in countries} - {None}
    return _canonical_countries(_column(contacts, "country")).isin(region)


def gdpr_filter(contacts: pd.DataFrame, mode: str, countries: Iterable[str] = EU_EEA) -> pd.DataFrame:
    """Apply ``PersonaConfig.gdpr`` before persona enrichment.

    ``"enrich"`` keeps everyone; ``"skip"`` drops contacts in the GDPR region;
    ``"opted_in_only"`` keeps GDPR-region contacts only when ``opted_in`` is true.
    A blank country is kept (it cannot be placed in the region). The default region is
    the EU/EEA; pass e.g. ``EU_EEA | {"united kingdom"}`` to include UK GDPR.
    """
    if mode == "enrich":
        return contacts
    in_region = gdpr_mask(contacts, countries)
    if mode == "skip":
        return contacts[~in_region]
    if mode == "opted_in_only":
        return contacts[~in_region | _truthy(_column(contacts, "opted_in"))]
    raise ValueError(f"unknown gdpr mode {mode!r} (expected enrich, skip or opted_in_only)")
