"""Persona enrichment: people at target accounts, found by persona titles, just in time.

Order (SPEC §6): T1 accounts first (those with an intent signal first), then T2 accounts
entering a cadence (``in_cadence`` true in ``account_tiers``); T3 accounts get none. An
account is searched only while it misses its coverage target (P1/P2 personas, contacts)
counted on the contacts it already has, so covered accounts cost nothing.

Per account: a people search by the persona titles (exact, adjacent and broad) through
the providers that can search people, in waterfall order, until one finds someone. Found
people are scored with the persona rubric; excluded titles and people already in the CRM
(same e-mail, else same LinkedIn URL) are dropped; GDPR applies (``personas.gdpr``:
``skip`` drops people in the EU/EEA; ``opted_in_only`` keeps only opted-in ones, and a
person found by a search has not opted in). The best people up to the target are kept,
their e-mail revealed (a paid match) only when the search did not return one, and stored
as contacts (``source`` = provider); no e-mail = ``needs_research`` (keep the LinkedIn URL).
Searches and matches go through the same cache, ledger and budget as account enrichment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from marketmap.config import ClientConfig, PersonaConfig
from marketmap.enrichment import cache, ledger
from marketmap.enrichment.providers.base import Answer, LookupContext, PeopleQuery, PersonQuery, Provider
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert

log = logging.getLogger(__name__)


def _norm_linkedin(url: Any) -> str | None:
    if not url or not isinstance(url, str):
        return None
    u = url.strip().lower().split("?")[0].rstrip("/")
    for prefix in ("https://", "http://"):
        u = u.removeprefix(prefix)
    if "/in/" not in u:
        return None
    return "linkedin.com/in/" + u.split("/in/", 1)[1]


def _norm_email(email: Any) -> str | None:
    return email.strip().lower() if isinstance(email, str) and "@" in email else None


class _PeopleRun:
    def __init__(
        self, cfg: ClientConfig, engine: Engine, run_id: str, providers: list[Provider], now: dt.datetime
    ):
        self.cfg = cfg
        self.engine = engine
        self.run_id = run_id
        self.providers = [p for p in providers if p.supports_people]
        self.now = now
        self.cid = cfg.client_id
        self.month = ledger.month_of(now, cfg.tz)
        self.budget = float(cfg.enrichment.monthly_credit_budget)
        self.fresh_after = now - dt.timedelta(days=cfg.enrichment.refresh_days)
        self.exhausted = False
        self.stats: dict[str, Any] = {
            "credits": 0.0,
            "searches": 0,
            "matches": 0,
            "cache_hits": 0,
            "budget_refused": 0,
        }

    async def paid(self, provider: Provider, op: str, key: str, account_key: str, call) -> Answer | None:
        """One people lookup through cache, ledger and budget; None when the budget refuses it."""
        hit = cache.read(self.engine, self.cid, provider.name, [key], self.fresh_after).get(key)
        if hit:
            self.stats["cache_hits"] += 1
            return Answer(hit.status, raw=hit.response, reason="cached")
        price = provider.cost(op)
        if self.exhausted and price > 0:
            self.stats["budget_refused"] += 1
            return None
        granted, refused = ledger.reserve(
            self.engine,
            client_id=self.cid,
            provider=provider.name,
            run_id=self.run_id,
            month=self.month,
            budget=self.budget,
            requests=[ledger.Request(key, account_key, price)],
            now=self.now,
        )
        if refused:
            self.exhausted = True
            self.stats["budget_refused"] += 1
            return None
        res = granted[key]
        a = await call()
        if a.status == "hit":
            outcome, credits = "hit", res.credits
        elif a.status == "miss":
            outcome = "miss"
            credits = res.credits if (provider.charges_on_miss() or a.charged) else 0.0
        else:
            outcome, credits = ("timeout", res.credits) if a.charged else (a.status, 0.0)
        self.stats["credits"] += credits
        with self.engine.begin() as conn:
            ledger.settle(conn, [ledger.Settlement(res.entry_id, outcome, credits, a.reason)], self.now)
            if a.status in ("hit", "miss"):
                cache.write(conn, self.cid, provider.name, {key: (a.status, a.raw)}, self.now)
        return a


def _titles(pcfg: PersonaConfig) -> tuple[str, ...]:
    t_ = pcfg.titles
    return tuple(dict.fromkeys([*t_.exact, *t_.adjacent, *t_.broad]))


def _existing_contacts(engine: Engine, client_id: str, keys: list[str]) -> pd.DataFrame:
    c = t.contacts.c
    cols = [
        c.contact_key,
        c.account_key,
        c.title,
        c.department,
        c.email,
        c.linkedin_url,
        c.country,
        c.role_start_date,
        c.opted_in,
    ]
    rows = []
    with engine.connect() as conn:
        for i in range(0, len(keys), 500):
            rows += conn.execute(
                select(*cols).where(c.client_id == client_id, c.account_key.in_(keys[i : i + 500]))
            ).all()
    return pd.DataFrame(rows, columns=[col.name for col in cols])


def _accounts(engine: Engine, client_id: str, keys: list[str]) -> pd.DataFrame:
    c = t.accounts.c
    rows = []
    with engine.connect() as conn:
        for i in range(0, len(keys), 500):
            rows += conn.execute(
                select(c.account_key, c.domain, c.name, c.intent_score).where(
                    c.client_id == client_id, c.account_key.in_(keys[i : i + 500])
                )
            ).all()
    return pd.DataFrame(rows, columns=["account_key", "domain", "name", "intent_score"])


def account_tiers(cfg: ClientConfig, engine: Engine, in_cadence: Iterable[str] = ()) -> pd.DataFrame:
    """The ``account_tiers`` frame from the build's stored scores (current rubric version).

    One row per account: its best tier over the products, ``intent_score`` (a signal: those
    accounts first), and ``in_cadence`` for the given account keys (T2 accounts entering a
    cadence; the build knows none, the monthly and quarterly runs pass them).
    """
    from marketmap.versions import rubric_version
    from marketmap.warehouse.queries import read_scores

    scores = read_scores(engine, cfg.client_id, rubric_version(cfg))
    if scores.empty:
        return pd.DataFrame(columns=["account_key", "tier", "intent_score", "in_cadence"])
    rank = scores["tier"].map({"T1": 0, "T2": 1, "T3": 2}).fillna(3)
    best = scores.assign(_r=rank).sort_values(["account_key", "_r"]).drop_duplicates("account_key")
    out = best[["account_key", "tier"]].reset_index(drop=True)
    info = _accounts(engine, cfg.client_id, out["account_key"].tolist()).set_index("account_key")
    out["intent_score"] = out["account_key"].map(info["intent_score"]) if len(info) else None
    out["in_cadence"] = out["account_key"].isin(set(in_cadence))
    return out


def select_accounts(account_tiers: pd.DataFrame) -> pd.DataFrame:
    """T1 accounts, then T2 accounts entering a cadence; signals (intent, priority) first."""
    df = account_tiers.copy()
    if "in_cadence" not in df:
        df["in_cadence"] = False
    cadence = df["in_cadence"].fillna(False).astype(bool)
    df = df[(df["tier"] == "T1") | ((df["tier"] == "T2") & cadence)].copy()
    df["_tier"] = df["tier"].map({"T1": 0, "T2": 1})
    if "priority" in df:
        signal = pd.to_numeric(df["priority"], errors="coerce")
    elif "intent_score" in df:
        signal = pd.to_numeric(df["intent_score"], errors="coerce")
    else:
        signal = pd.Series(0.0, index=df.index)
    df["_signal"] = signal.fillna(-1)
    return df.sort_values(["_tier", "_signal", "account_key"], ascending=[True, False, True], kind="stable")


async def enrich_personas_async(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    providers: list[Provider],
    account_tiers: pd.DataFrame,
    *,
    run_date: dt.date | None = None,
    now: dt.datetime | None = None,
    max_accounts: int | None = None,
) -> dict:
    """Find and store people at target accounts (see the module docstring).

    Args:
        account_tiers: ``account_key``, ``tier`` (T1/T2/T3/OUT); optional ``in_cadence``
            (T2 accounts are enriched only when true), ``priority`` or ``intent_score``.
        max_accounts: stop after this many accounts (a just-in-time batch).

    Returns:
        A JSON-safe summary: accounts considered, enriched, covered already; contacts
        added, without e-mail; people skipped for GDPR, duplicates; credits; budget.
    """
    from marketmap.scoring.personas import EXCLUDED, coverage, gdpr_filter, score_contacts

    now = now or dt.datetime.now(dt.UTC)
    run_date = run_date or now.date()
    run = _PeopleRun(cfg, engine, run_id, providers, now)
    pcfg = cfg.personas
    chosen = select_accounts(account_tiers)
    if max_accounts is not None:
        chosen = chosen.head(max_accounts)
    keys = chosen["account_key"].tolist()
    summary: dict[str, Any] = {
        "client_id": cfg.client_id,
        "run_id": run_id,
        "accounts_considered": len(keys),
        "accounts_covered_already": 0,
        "accounts_enriched": 0,
        "accounts_without_people": 0,
        "contacts_added": 0,
        "contacts_need_research": 0,
        "skipped_gdpr": 0,
        "skipped_duplicates": 0,
        "skipped_excluded_titles": 0,
        "skipped_for_budget": [],
        "gdpr": pcfg.gdpr,
    }
    if not keys or not run.providers:
        summary["note"] = "no target accounts" if not keys else "no provider can search people"
        return summary | {"credits": 0.0}

    existing = _existing_contacts(engine, cfg.client_id, keys)
    scored = score_contacts(existing, pcfg, run_date) if len(existing) else existing.assign(persona_tier=[])
    cov = coverage(scored, chosen[["account_key", "tier"]], pcfg.coverage_targets).set_index("account_key")
    info = _accounts(engine, cfg.client_id, keys).set_index("account_key")
    titles = _titles(pcfg)
    # a fixed page size (not the account's gap): the same search is the same cached lookup
    per_account = 25
    seen_email = {e for e in (existing["email"].map(_norm_email) if len(existing) else []) if e}
    seen_li = {u for u in (existing["linkedin_url"].map(_norm_linkedin) if len(existing) else []) if u}
    new_rows: list[dict] = []
    try:
        for key in keys:
            gap = cov.loc[key] if key in cov.index else None
            if gap is None or bool(gap["meets_target"]):
                summary["accounts_covered_already"] += 1
                continue
            if key not in info.index:
                continue
            want = int(max(gap["gap_contacts"], gap["gap_p1"] + gap["gap_p2"]))
            domain, name = info.at[key, "domain"], info.at[key, "name"]
            found: list[dict] = []
            source = None
            for p in run.providers:
                q = PeopleQuery(
                    key, domain if isinstance(domain, str) else None, name, titles, limit=per_account
                )
                run.stats["searches"] += 1
                a = await run.paid(
                    p,
                    "people_search",
                    q.lookup_key,
                    key,
                    lambda p=p, q=q: p.search_people(q, LookupContext(engine, cfg.client_id, run_id)),
                )
                if a is None:
                    summary["skipped_for_budget"].append(key)
                    break
                if a.status == "hit":
                    found = p.parse_people(a.raw)
                    if found:
                        source = p
                        break
            if not found or source is None:
                summary["accounts_without_people"] += 1
                continue
            people = pd.DataFrame(found)
            for col in (
                "title",
                "country",
                "email",
                "linkedin_url",
                "first_name",
                "last_name",
                "external_id",
            ):
                if col not in people:
                    people[col] = None
            people["account_key"] = key
            people["opted_in"] = None  # a person found by a search has not opted in to anything
            before = len(people)
            people = gdpr_filter(people, pcfg.gdpr)
            summary["skipped_gdpr"] += before - len(people)
            dup = people["email"].map(_norm_email).isin(seen_email) | people["linkedin_url"].map(
                _norm_linkedin
            ).isin(seen_li)
            summary["skipped_duplicates"] += int(dup.sum())
            people = people[~dup]
            if people.empty:
                continue
            people = score_contacts(people, pcfg, run_date)
            excluded = people["persona_tier"] == EXCLUDED
            summary["skipped_excluded_titles"] += int(excluded.sum())
            people = people[~excluded].sort_values(["persona_score"], ascending=False, kind="stable")
            picked = _pick(people, int(gap["gap_p1"]), int(gap["gap_p2"]), want)
            added = 0
            for _, person in picked.iterrows():
                record = {
                    k: (None if pd.isna(v) else v)
                    for k, v in person.items()
                    if k in found[0] or k == "account_key"
                }
                record["domain"] = domain
                if not _norm_email(record.get("email")):
                    mq = PersonQuery(key, record)
                    run.stats["matches"] += 1
                    m = await run.paid(
                        source,
                        "person_match",
                        mq.lookup_key,
                        key,
                        lambda mq=mq, src=source: src.match_person(
                            mq, LookupContext(engine, cfg.client_id, run_id)
                        ),
                    )
                    if m is not None and m.status == "hit":
                        revealed = source.parse_person(m.raw)
                        record["email"] = revealed.get("email") or record.get("email")
                        record["linkedin_url"] = record.get("linkedin_url") or revealed.get("linkedin_url")
                email, li = _norm_email(record.get("email")), _norm_linkedin(record.get("linkedin_url"))
                if (email and email in seen_email) or (li and li in seen_li):
                    summary["skipped_duplicates"] += 1
                    continue
                seen_email.update({email} - {None})
                seen_li.update({li} - {None})
                new_rows.append(_contact_row(cfg.client_id, run_id, key, record, source.name))
                added += 1
            if added:
                summary["accounts_enriched"] += 1
                summary["contacts_added"] += added
    finally:
        for p in run.providers:
            await p.aclose()
        if new_rows:
            with engine.begin() as conn:
                upsert(conn, t.contacts, new_rows)
    summary["contacts_need_research"] = sum(1 for r in new_rows if r["needs_research"])
    summary["credits"] = round(run.stats["credits"], 4)
    summary["lookups"] = {k: v for k, v in run.stats.items() if k != "credits"}
    summary["budget_exhausted"] = run.exhausted
    summary["skipped_for_budget"] = summary["skipped_for_budget"][:50]
    return summary


def _pick(people: pd.DataFrame, gap_p1: int, gap_p2: int, want: int) -> pd.DataFrame:
    """The best people to close the gap: P1s first, then P2s, then anyone, up to ``want``."""
    p1 = people[people["persona_tier"] == "P1"]
    p2 = people[people["persona_tier"] == "P2"]
    rest = people[~people.index.isin(p1.index) & ~people.index.isin(p2.index)]
    chosen = [p1.head(max(gap_p1, 0)), p2.head(max(gap_p2, 0))]
    taken = pd.concat(chosen)
    left = want - len(taken)
    if left > 0:
        others = pd.concat([p1, p2, rest])
        taken = pd.concat([taken, others[~others.index.isin(taken.index)].head(left)])
    return taken


def _contact_row(client_id: str, run_id: str, account_key: str, r: dict, provider: str) -> dict:
    ident = (
        r.get("external_id")
        or _norm_linkedin(r.get("linkedin_url"))
        or _norm_email(r.get("email"))
        or (f"{r.get('first_name')}|{r.get('last_name')}|{account_key}")
    )
    key = "enr:" + hashlib.sha1(f"{provider}|{ident}".encode()).hexdigest()[:24]
    email = _norm_email(r.get("email"))
    return {
        "client_id": client_id,
        "contact_key": key,
        "account_key": account_key,
        "first_name": r.get("first_name"),
        "last_name": r.get("last_name"),
        "title": r.get("title"),
        "email": email,
        "linkedin_url": r.get("linkedin_url"),
        "country": r.get("country"),
        "opted_in": None,
        "source": provider,
        "needs_research": email is None,
        "last_seen_run": run_id,
        "updated_at": dt.datetime.now(dt.UTC),  # wall clock: the monthly re-score reads rows written since it ran
    }


def enrich_personas(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    providers: list[Provider],
    account_tiers: pd.DataFrame,
    **kwargs,
) -> dict:
    """Synchronous :func:`enrich_personas_async` (for an Airflow task)."""
    return asyncio.run(enrich_personas_async(cfg, engine, run_id, providers, account_tiers, **kwargs))
