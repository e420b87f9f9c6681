"""The waterfall: providers in configured order, per field, within the credit budget.

For each priority group of the plan (T1 candidates first), providers are tried in config
order. A provider is asked only for accounts that still miss a field it can fill; the
first valid value of a field wins and later providers are not asked for it. After each
provider the accounts it touched are re-scored, and an account whose highest attainable
score can no longer reach the minimum tier leaves the waterfall: no further credit is spent
on it.

Each paid lookup goes: cache (fresh answer? free) -> ledger reservation (within the
budget, or refused: the run stops paying) -> the call (rate limit, retries) -> ledger
settlement + cache write in one transaction. Values land in ``accounts`` (blanks only) and
``account_field_sources`` (which provider filled which field, when).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, bindparam, or_, update

from marketmap.config import ClientConfig
from marketmap.enrichment import cache, ledger
from marketmap.enrichment import fields as F
from marketmap.enrichment.planner import TIER_RANK, EnrichmentPlan, attainable, guard_fields, separators
from marketmap.enrichment.providers.base import Answer, CompanyQuery, LookupContext, Provider
from marketmap.redact import redact
from marketmap.warehouse import schema as t
from marketmap.warehouse import upsert

log = logging.getLogger(__name__)

_TEXT_KINDS = ("text", "list")


@dataclass(frozen=True)
class Fill:
    account_key: str
    field: str
    value: Any
    provider: str


@dataclass
class ProviderStats:
    lookups: int = 0  # real lookups (cache reads excluded)
    cache_hits: int = 0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    pending: int = 0
    refused: int = 0
    credits: float = 0.0
    requested: Counter = field(default_factory=Counter)
    filled: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)


@dataclass
class EnrichmentResult:
    """What a run did: credits, fills, skips, waits and alerts."""

    client_id: str
    run_id: str
    month: str
    budget: float
    credits_spent: float = 0.0
    month_spent: float = 0.0
    accounts_enriched: int = 0
    restored: int = 0
    fields_filled: Counter = field(default_factory=Counter)
    providers: dict[str, ProviderStats] = field(default_factory=dict)
    stopped_early: dict[str, int] = field(default_factory=dict)
    skipped_for_budget: list[str] = field(default_factory=list)
    clay_batches: dict[str, int] = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)

    @property
    def budget_exhausted(self) -> bool:
        return bool(self.skipped_for_budget)

    def summary(self) -> dict:
        """Small, JSON-safe: for XCom, the run summary and the task log."""
        return {
            "client_id": self.client_id,
            "run_id": self.run_id,
            "month": self.month,
            "budget": self.budget,
            "credits_spent": round(self.credits_spent, 4),
            "month_spent": round(self.month_spent, 4),
            "accounts_enriched": self.accounts_enriched,
            "restored_from_sources": self.restored,
            "fields_filled": dict(sorted(self.fields_filled.items())),
            "providers": {
                name: {
                    "lookups": s.lookups,
                    "cache_hits": s.cache_hits,
                    "hits": s.hits,
                    "misses": s.misses,
                    "errors": s.errors,
                    "pending": s.pending,
                    "refused_by_budget": s.refused,
                    "credits": round(s.credits, 4),
                    "filled": dict(sorted(s.filled.items())),
                    "top_reasons": dict(s.reasons.most_common(5)),
                }
                for name, s in self.providers.items()
            },
            "stopped_early": dict(self.stopped_early),
            "budget_exhausted": self.budget_exhausted,
            "skipped_for_budget": len(self.skipped_for_budget),
            "skipped_for_budget_examples": self.skipped_for_budget[:20],
            "clay_batches": dict(self.clay_batches),
            "alerts": self.alerts,
        }


# --------------------------------------------------------------------------- writing values


def apply_fills(
    conn, client_id: str, run_id: str | None, fills: list[Fill], now: dt.datetime, *, record: bool = True
) -> int:
    """Write values into blank account fields; record their source (in the caller's transaction)."""
    if not fills:
        return 0
    by_field: dict[str, list[Fill]] = defaultdict(list)
    for f in fills:
        by_field[f.field].append(f)
    written = 0
    for name, items in by_field.items():
        col = t.accounts.c[name]
        blank = col.is_(None)
        if F.FILLABLE.get(name, "text") in _TEXT_KINDS:
            blank = or_(blank, col == "")
        stmt = (
            update(t.accounts)
            .where(
                and_(t.accounts.c.client_id == client_id, t.accounts.c.account_key == bindparam("k"), blank)
            )
            # updated_at is the wall clock, not the run's: the monthly re-score reads rows written since it last ran
            .values({name: bindparam("v"), "updated_at": dt.datetime.now(dt.UTC)})
        )
        res = conn.execute(stmt, [{"k": f.account_key, "v": f.value} for f in items])
        written += max(res.rowcount or 0, 0)
    if record:
        upsert(
            conn,
            t.account_field_sources,
            [
                {
                    "client_id": client_id,
                    "account_key": f.account_key,
                    "field": f.field,
                    "provider": f.provider,
                    "value": F.to_json(f.value),
                    "filled_at": now,
                    "run_id": run_id,
                }
                for f in fills
            ],
        )
    return written


def _write_stats(engine: Engine, client_id: str, run_id: str, stats: dict[str, ProviderStats], now) -> None:
    """Add this run's counts to ``enrichment_stats`` (a retried task adds its own lookups)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    rows = []
    for name, s in stats.items():
        if not (s.lookups or s.requested):
            continue
        rows.append(
            {
                "field": "*",
                "lookups": s.lookups,
                "hits": s.hits,
                "requested": 0,
                "filled": 0,
                "credits": s.credits,
            }
        )
        rows[-1]["provider"] = name
        for f in sorted(set(s.requested) | set(s.filled)):
            rows.append(
                {
                    "provider": name,
                    "field": f,
                    "lookups": 0,
                    "hits": 0,
                    "requested": s.requested[f],
                    "filled": s.filled[f],
                    "credits": 0.0,
                }
            )
    if not rows:
        return
    for r in rows:
        r.update(client_id=client_id, run_id=run_id, updated_at=now)
    tab = t.enrichment_stats
    with engine.begin() as conn:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(tab).values(rows)
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.name for c in tab.primary_key.columns],
            set_={
                "lookups": tab.c.lookups + ex.lookups,
                "hits": tab.c.hits + ex.hits,
                "requested": tab.c.requested + ex.requested,
                "filled": tab.c.filled + ex.filled,
                "credits": tab.c.credits + ex.credits,
                "updated_at": ex.updated_at,
            },
        )
        conn.execute(stmt)


# --------------------------------------------------------------------------- the runner


def can_lookup(provider: Provider, q: CompanyQuery) -> bool:
    """Whether the provider can look this company up (most need a domain)."""
    by_name = provider.kind in ("zoominfo", "clay") or provider.options.get("key") == "name"
    return bool(q.domain) or (by_name and bool(q.name))


class _Run:
    def __init__(
        self,
        cfg: ClientConfig,
        engine: Engine,
        run_id: str,
        plan: EnrichmentPlan,
        providers: list[Provider],
        now: dt.datetime,
        chunk: int,
    ):
        self.cfg = cfg
        self.engine = engine
        self.run_id = run_id
        self.plan = plan
        self.providers = providers
        self.now = now
        self.chunk = chunk
        self.cid = cfg.client_id
        self.month = ledger.month_of(now, cfg.tz)
        self.budget = float(cfg.enrichment.monthly_credit_budget)
        self.fresh_after = now - dt.timedelta(days=cfg.enrichment.refresh_days)
        self.separators = separators(cfg)
        self.exhausted = False
        self.result = EnrichmentResult(self.cid, run_id, self.month, self.budget)
        self.result.providers = {p.name: ProviderStats() for p in providers}
        self.need = {k: set(v) for k, v in plan.needs.items()}
        self.frame = plan.accounts.copy()
        self.active = set(plan.needs)
        self.budget_blocked: set[str] = set()
        self.touched: set[str] = set()
        self.guard = guard_fields(cfg)

    # -- one provider, many queries ------------------------------------------------------
    async def lookup(self, provider: Provider, queries: list[CompanyQuery]) -> dict[str, Answer]:
        """Answers by lookup key: cache first, then paid calls within the budget."""
        stats = self.result.providers[provider.name]
        answers: dict[str, Answer] = {}
        todo = queries
        if provider.cached:
            hit = cache.read(
                self.engine, self.cid, provider.name, [q.lookup_key for q in queries], self.fresh_after
            )
            for key, c in hit.items():
                answers[key] = Answer(c.status, raw=c.response, reason="cached")
            stats.cache_hits += len(hit)
            todo = [q for q in queries if q.lookup_key not in hit]
        ctx = LookupContext(self.engine, self.cid, self.run_id)
        for i in range(0, len(todo), self.chunk):
            part = todo[i : i + self.chunk]
            got = (
                await self._fetch(provider, part, ctx)
                if not provider.cached
                else await self._paid(provider, part, ctx, stats)
            )
            answers.update(got)
            for q in part:
                a = got.get(q.lookup_key)
                if a is None:
                    continue  # refused by the budget
                stats.lookups += 1
                if a.status == "hit":
                    stats.hits += 1
                elif a.status == "miss":
                    stats.misses += 1
                elif a.status == "pending":
                    stats.pending += 1
                else:
                    stats.errors += 1
                if a.reason and a.status != "hit":
                    stats.reasons[f"{a.status}: {a.reason[:80]}"] += 1
        return answers

    async def _fetch(
        self, provider: Provider, queries: list[CompanyQuery], ctx: LookupContext
    ) -> dict[str, Answer]:
        size = max(1, provider.bulk_size)
        batches = [queries[i : i + size] for i in range(0, len(queries), size)]
        out: dict[str, Answer] = {}
        for part in await asyncio.gather(*(provider.fetch_companies(b, ctx) for b in batches)):
            out.update(part)
        for q in queries:  # a provider that forgot a query answered nothing about it
            out.setdefault(q.lookup_key, Answer("miss", reason="no answer for this lookup"))
        return out

    async def _paid(
        self, provider: Provider, queries: list[CompanyQuery], ctx, stats: ProviderStats
    ) -> dict[str, Answer]:
        """Paid lookups in waves: each wave reserves what the budget still allows, calls, settles.

        A reservation is pessimistic (the full price before the answer); a provider that does not
        charge for a miss gives those credits back when it settles, so the next wave can use them.
        Only lookups the budget refuses after the last wave are blocked.
        """
        answers: dict[str, Answer] = {}
        todo = queries
        while todo:
            got, refused = await self._paid_wave(provider, todo, ctx, stats)
            answers.update(got)
            if not refused or len(refused) == len(todo) or provider.charges_on_miss():
                break
            todo = [q for q in todo if q.lookup_key in refused]
        return answers

    async def _paid_wave(
        self, provider: Provider, queries: list[CompanyQuery], ctx, stats: ProviderStats
    ) -> tuple[dict[str, Answer], set[str]]:
        price = provider.cost("company")
        if self.exhausted and price > 0:
            stats.refused += len(queries)
            self.budget_blocked.update(q.account_key for q in queries)
            return {}, set()
        granted, refused = ledger.reserve(
            self.engine,
            client_id=self.cid,
            provider=provider.name,
            run_id=self.run_id,
            month=self.month,
            budget=self.budget,
            requests=[ledger.Request(q.lookup_key, q.account_key, price) for q in queries],
            now=self.now,
        )
        refused_set = set(refused)
        go = [q for q in queries if q.lookup_key in granted]
        if refused and (not go or provider.charges_on_miss()):  # no refund can come: the budget is spent
            self.exhausted = True
            stats.refused += len(refused)
            self.budget_blocked.update(q.account_key for q in queries if q.lookup_key in refused_set)
            log.warning(
                "%s: monthly credit budget %.0f reached; %d %s lookups refused",
                self.cid,
                self.budget,
                len(refused),
                provider.name,
            )
        if not go:
            return {}, set()
        ctx.entry_ids = {k: r.entry_id for k, r in granted.items()}
        answers = await self._fetch(provider, go, ctx)
        settlements, to_cache = [], {}
        for q in go:
            a, res = answers[q.lookup_key], granted[q.lookup_key]
            if a.status == "hit":
                credits, outcome = res.credits, "hit"
                to_cache[q.lookup_key] = ("hit", a.raw)
            elif a.status == "miss":
                credits = res.credits if (provider.charges_on_miss() or a.charged) else 0.0
                outcome = "miss"
                to_cache[q.lookup_key] = ("miss", a.raw)
            elif a.status == "pending" and provider.asynchronous:
                continue  # the reservation stays open until the callback or the timeout
            elif a.status == "pending":
                credits, outcome = 0.0, "pending"
            else:
                credits, outcome = (res.credits, "timeout") if a.charged else (0.0, "error")
            stats.credits += credits
            settlements.append(ledger.Settlement(res.entry_id, outcome, credits, a.reason))
        self.result.credits_spent += sum(s.credits for s in settlements)

        def _store() -> None:
            with self.engine.begin() as conn:
                ledger.settle(conn, settlements, self.now)
                if to_cache:
                    cache.write(conn, self.cid, provider.name, to_cache, self.now)

        # synchronous on purpose: nothing else runs in this loop meanwhile, and SQLite
        # connections stay in the thread that opened them
        _store()
        return answers, refused_set

    # -- the waterfall ----------------------------------------------------------------
    def _query(self, key: str) -> CompanyQuery:
        row = self.frame.loc[key]
        domain = None if F.is_blank(row.get("domain")) else str(row["domain"])
        name = None if F.is_blank(row.get("name")) else str(row["name"])
        return CompanyQuery(key, domain, name)

    async def stage(self, provider: Provider, group: list[str]) -> None:
        keys = [k for k in group if k in self.active and self.need[k] & provider.fields]
        queries = [q for q in (self._query(k) for k in keys) if can_lookup(provider, q)]
        if not queries:
            return
        by_lookup: dict[str, list[str]] = defaultdict(list)
        unique: dict[str, CompanyQuery] = {}
        for q in queries:
            by_lookup[q.lookup_key].append(q.account_key)
            unique.setdefault(q.lookup_key, q)
        answers = await self.lookup(provider, list(unique.values()))
        stats = self.result.providers[provider.name]
        fills: list[Fill] = []
        for lookup_key, accts in by_lookup.items():
            a = answers.get(lookup_key)
            if a is None:
                continue
            if a.status == "pending" and provider.asynchronous:
                for k in accts:
                    self.active.discard(k)
                    self._stopped(f"waiting for {provider.name}")
                continue
            for k in accts:
                wanted = self.need[k] & provider.fields
                fresh = a.reason != "cached"
                if fresh:
                    stats.requested.update(wanted)
                if a.status != "hit":
                    continue
                values = F.valid_values(provider.parse_company(a.raw), wanted, self.separators)
                if fresh:
                    stats.filled.update(values.keys())
                for f, v in values.items():
                    fills.append(Fill(k, f, v, provider.name))
                    self.need[k].discard(f)
                    self.frame.at[k, f] = v
                    self.touched.add(k)
        if fills:

            def _apply() -> None:
                with self.engine.begin() as conn:
                    apply_fills(conn, self.cid, self.run_id, fills, self.now)

            _apply()
            self.result.fields_filled.update(f.field for f in fills)
        self._gate([k for k in keys if k in self.active])

    def _gate(self, keys: list[str]) -> None:
        """Drop accounts that are done, that can no longer reach the minimum tier, or whose
        tier is settled (then only guard fields, e.g. negative indicators, are still asked)."""
        for k in keys:
            if not self.need[k]:
                self.active.discard(k)
        live = [k for k in keys if k in self.active and k in self.touched]
        if not live or not self.plan.gate:
            return
        from marketmap.scoring.fit import score_icp

        scored = score_icp(
            self.frame.loc[live].reset_index(drop=True), self.cfg.icp, self.plan.run_date, explain=False
        )
        rank, _, wanted = attainable(scored, self.cfg, self.plan.min_tier, self.plan.exact_scores)
        limit = TIER_RANK[self.plan.min_tier]
        for k in live:
            if int(rank.get(k, 3)) > limit:
                self.active.discard(k)
                self._stopped(f"cannot reach {self.plan.min_tier} after enrichment")
                continue
            self.need[k] &= wanted.get(k, set()) | self.guard
            if not self.need[k]:
                self.active.discard(k)
                self._stopped("tier settled")

    def _stopped(self, reason: str) -> None:
        self.result.stopped_early[reason] = self.result.stopped_early.get(reason, 0) + 1

    async def run(self) -> EnrichmentResult:
        if self.plan.restores:
            fills = [
                Fill(r["account_key"], r["field"], r["value"], r["provider"]) for r in self.plan.restores
            ]
            with self.engine.begin() as conn:
                self.result.restored = apply_fills(conn, self.cid, self.run_id, fills, self.now, record=False)
        try:
            for group in self.plan.groups:
                for provider in self.providers:
                    await self.stage(provider, group)
        finally:
            for p in self.providers:
                await p.aclose()
            _write_stats(self.engine, self.cid, self.run_id, self.result.providers, self.now)
        r = self.result
        r.accounts_enriched = len(self.touched)
        r.skipped_for_budget = sorted(k for k in self.budget_blocked if self.need.get(k))
        r.month_spent = ledger.spent(self.engine, self.cid, self.month)
        for p in self.providers:
            if p.asynchronous and r.providers[p.name].pending:
                from marketmap.enrichment.providers.clay import batch_id_for

                r.clay_batches[batch_id_for(self.cid, self.run_id, p.name)] = r.providers[p.name].pending
        r.alerts = run_alerts(self.cfg, r, self.now)
        for name, s in r.providers.items():
            if s.reasons:
                log.info("%s %s: %s", self.cid, name, redact(dict(s.reasons.most_common(5))))
        return r


BURST_SHARE = 0.25


def run_alerts(cfg: ClientConfig, r: EnrichmentResult, now: dt.datetime) -> list[dict]:
    """Alerts of a run: the budget stopped it; the month burns faster than its pace."""
    from marketmap.enrichment.reports import pace_share

    alerts = []
    if r.skipped_for_budget:
        alerts.append(
            {
                "rule": "credit_budget_reached",
                "severity": "warning",
                "role": "revops",
                "title": (
                    f"{cfg.name}: monthly credit budget {r.budget:,.0f} reached; enrichment stopped with "
                    f"{len(r.skipped_for_budget):,} accounts left (e.g. {', '.join(r.skipped_for_budget[:3])})"
                ),
                "numbers": {
                    "budget": r.budget,
                    "spent": round(r.month_spent, 2),
                    "accounts_skipped": len(r.skipped_for_budget),
                },
            }
        )
    for name, s in r.providers.items():
        if s.lookups and s.errors == s.lookups:
            reason = s.reasons.most_common(1)[0][0] if s.reasons else "unknown"
            alerts.append(
                {
                    "rule": "enrichment_provider_failing",
                    "severity": "warning",
                    "role": "revops",
                    "title": (
                        f"{cfg.name}: enrichment provider {name} failed all {s.lookups:,} lookups "
                        f"({redact(reason)}); check its connection and status"
                    ),
                    "numbers": {"provider": name, "lookups": s.lookups, "errors": s.errors},
                }
            )
    # A monthly schedule spends in bursts (the 1st-of-month run enriches the month's new accounts
    # at once), so spending up to a quarter of the budget is never "above pace": otherwise every
    # run early in a month would cry wolf.
    pace = max(pace_share(r.month, now, cfg.tz), BURST_SHARE) * r.budget
    if r.budget and r.month_spent > pace + 1e-9:
        alerts.append(
            {
                "rule": "credit_burn_above_pace",
                "severity": "warning",
                "role": "revops",
                "title": (
                    f"{cfg.name}: {r.month_spent:,.0f} credits spent in {r.month}, above the budget's pace "
                    f"({pace:,.0f} of {r.budget:,.0f} by now)"
                ),
                "numbers": {"spent": round(r.month_spent, 2), "pace": round(pace, 2), "budget": r.budget},
            }
        )
    return alerts


async def run_account_enrichment_async(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    plan: EnrichmentPlan,
    providers: list[Provider],
    *,
    now: dt.datetime | None = None,
    chunk: int = 200,
) -> EnrichmentResult:
    """Run the waterfall for a plan (see the module docstring).

    Args:
        cfg: the client config (budget, refresh age, rubric).
        engine: the warehouse.
        run_id: the Airflow run id (ledger, sources, stats).
        plan: from :func:`~marketmap.enrichment.planner.plan_account_enrichment`.
        providers: from :func:`~marketmap.enrichment.providers.providers_for`, in waterfall order.
        now: the clock (tests).
        chunk: lookups reserved, sent and settled together (concurrency comes from each
            provider's ``options.concurrency`` within a chunk).
    """
    now = now or dt.datetime.now(dt.UTC)
    return await _Run(cfg, engine, run_id, plan, providers, now, chunk).run()


def run_account_enrichment(
    cfg: ClientConfig,
    engine: Engine,
    run_id: str,
    plan: EnrichmentPlan,
    providers: list[Provider],
    **kwargs,
) -> EnrichmentResult:
    """Synchronous :func:`run_account_enrichment_async` (for an Airflow task)."""
    return asyncio.run(run_account_enrichment_async(cfg, engine, run_id, plan, providers, **kwargs))
