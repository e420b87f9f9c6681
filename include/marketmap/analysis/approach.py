"""Recommend one of the six Market Map approaches from the scoping facts (SPEC §3).

Source: seed 000 (``seeds/000_*.txt``), "Approach Decision Questions", repeated in seed
002; the SPEC adds the credit rule (10k credits recommended for an initial build, 5-10k
means T1 only) and the data rule (100 closed-won or 200 closed deals for the
historical-data approach). The table, encoded row by row in :func:`votes`:

===================================  ===========================================================
Question                             Answer -> Approach
===================================  ===========================================================
How many sales reps?                 1-3 = T1 only, 5-10 = Tiered, 10+ = Full TAM if vertical
Total addressable market size?       <100k = Full TAM, 500k+ = Tiered, Millions = T1 only
Vertical or horizontal?              Vertical = Full TAM feasible, Horizontal = T1 only
How many customers?                  <50 = No Historical Data, 100-500 = Historical Data Heavy,
                                     500+ = Full data analysis
How clean is your CRM?               Clean = Standard, Messy = CRM Cleanup First
What's your credit budget?           Unlimited = Enrich aggressively, Limited = T1 only
How urgent is this?                  Campaign next month = T1 sprint, Foundation = Full TAM
Sales/marketing aligned on ICP?      (meeting count only; not an approach)
===================================  ===========================================================

Gaps and overlaps in the table, resolved here: 4 reps counts as Tiered, exactly 10 reps
as "10+"; 10+ reps of a horizontal (or unknown) company vote Tiered; a TAM of 100k-500k
votes Tiered; 1M+ is "millions"; "500+ customers = full data analysis" is the
historical-data approach; a budget under 10,000 credits is "limited"; without deal
counts, 100+ customers stands in for 100 closed-won deals.

Combining the votes into one approach (the seed's approaches differ "in scope and depth",
so several can apply; the others are returned in ``also``):

1. **CRM cleanup first** when the CRM is messy: seed 000 has the cleanup happen
   "BEFORE starting Market Map".
2. **T1 only** when a hard constraint forces it: 1-3 reps, a TAM in the millions, a
   limited credit budget, or urgency.
3. **No historical data** (<50 customers) or **Historical-data heavy** (100+ closed-won
   or 200+ closed deals): the data decides how the ICP is defined (correlation analysis
   skipped or mandatory).
4. Otherwise the scope: the most-voted of Full TAM / Tiered pull / T1 only. Full TAM is
   only feasible for a vertical company with a TAM under 500k ("Vertical = Full TAM
   feasible"); otherwise its votes go to Tiered pull. Ties go to the narrower scope
   (one can expand later). No scope facts at all: Tiered pull.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from marketmap.config import ScopingFacts

FULL_TAM = "Full TAM"
TIERED = "Tiered pull"
T1_ONLY = "T1 only"
CLEANUP = "CRM cleanup first"
HISTORICAL = "Historical-data heavy"
NO_HISTORY = "No historical data"
APPROACHES = (FULL_TAM, TIERED, T1_ONLY, CLEANUP, HISTORICAL, NO_HISTORY)
SCOPES = (T1_ONLY, TIERED, FULL_TAM)  # narrowest first: the tie-break order

CREDITS_RECOMMENDED = 10_000
HISTORICAL_MIN_WON = 100
HISTORICAL_MIN_CLOSED = 200
NO_HISTORY_MAX_CUSTOMERS = 50


@dataclass(frozen=True)
class Vote:
    """One decision-table row's answer: ``approach`` is None when the row changes nothing."""

    question: str
    answer: str
    approach: str | None
    hard: bool = False  # a constraint that forces the approach


@dataclass
class Recommendation:
    approach: str
    reasons: list[str]
    scope: str = TIERED
    data_approach: str | None = None
    also: list[str] = field(default_factory=list)
    votes: list[Vote] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def votes(f: ScopingFacts) -> list[Vote]:
    """Each answered row of the decision table as a vote."""
    out: list[Vote] = []
    if f.reps is not None:
        if f.reps <= 3:
            out.append(Vote("sales reps", f"{f.reps} reps (1-3)", T1_ONLY, hard=True))
        elif f.reps < 10:
            out.append(Vote("sales reps", f"{f.reps} reps (5-10)", TIERED))
        elif f.vertical:
            out.append(Vote("sales reps", f"{f.reps} reps (10+) and vertical", FULL_TAM))
        else:
            out.append(Vote("sales reps", f"{f.reps} reps (10+) but not known to be vertical", TIERED))
    if f.tam_size is not None:
        if f.tam_size >= 1_000_000:
            out.append(Vote("TAM size", f"{f.tam_size:,} accounts (millions)", T1_ONLY, hard=True))
        elif f.tam_size >= 500_000:
            out.append(Vote("TAM size", f"{f.tam_size:,} accounts (500k+)", TIERED))
        elif f.tam_size < 100_000:
            out.append(Vote("TAM size", f"{f.tam_size:,} accounts (<100k)", FULL_TAM))
        else:
            out.append(Vote("TAM size", f"{f.tam_size:,} accounts (100k-500k)", TIERED))
    if f.vertical is not None:
        if f.vertical:
            out.append(Vote("vertical or horizontal", "vertical (Full TAM feasible)", FULL_TAM))
        else:
            out.append(Vote("vertical or horizontal", "horizontal", T1_ONLY))
    data = _data_vote(f)
    if data is not None:
        out.append(data)
    if f.crm_clean is not None:
        out.append(
            Vote(
                "CRM cleanliness",
                "clean (standard)" if f.crm_clean else "messy",
                None if f.crm_clean else CLEANUP,
                hard=not f.crm_clean,
            )
        )
    if f.credit_budget is not None:
        if f.credit_budget < CREDITS_RECOMMENDED:
            out.append(
                Vote(
                    "credit budget",
                    f"{f.credit_budget:,.0f} credits (under the {CREDITS_RECOMMENDED:,} "
                    "recommended for an initial build)",
                    T1_ONLY,
                    hard=True,
                )
            )
        else:
            out.append(
                Vote("credit budget", f"{f.credit_budget:,.0f} credits (enough to enrich broadly)", None)
            )
    if f.urgent is not None:
        if f.urgent:
            out.append(Vote("urgency", "launching a campaign soon (T1 sprint)", T1_ONLY, hard=True))
        else:
            out.append(Vote("urgency", "building a foundation", FULL_TAM))
    return out


def _data_vote(f: ScopingFacts) -> Vote | None:
    won, closed, customers = f.closed_won_deals, f.closed_deals, f.customers
    if (won is not None and won >= HISTORICAL_MIN_WON) or (
        closed is not None and closed >= HISTORICAL_MIN_CLOSED
    ):
        parts = [
            f"{won:,} closed-won" if won is not None else None,
            f"{closed:,} closed" if closed is not None else None,
        ]
        return Vote(
            "historical data",
            " and ".join(p for p in parts if p) + " deals (100 won or 200 closed needed)",
            HISTORICAL,
        )
    if customers is not None and customers < NO_HISTORY_MAX_CUSTOMERS:
        return Vote("customers", f"{customers:,} customers (<50)", NO_HISTORY)
    if customers is None and won is not None and won < NO_HISTORY_MAX_CUSTOMERS:
        return Vote("customers", f"{won:,} closed-won deals and no customer count (<50)", NO_HISTORY)
    if customers is not None and customers >= 100 and won is None and closed is None:
        label = "500+, full data analysis" if customers >= 500 else "100-500"
        return Vote("customers", f"{customers:,} customers ({label})", HISTORICAL)
    if customers is not None or won is not None or closed is not None:
        return Vote("historical data", "some history, below 100 closed-won / 200 closed deals", None)
    return None


def _scope(vs: list[Vote], f: ScopingFacts) -> tuple[str, list[str]]:
    scope_votes = [v for v in vs if v.approach in SCOPES]
    hard = [v for v in scope_votes if v.hard and v.approach == T1_ONLY]
    if hard:
        return T1_ONLY, [f"{v.question}: {v.answer} -> T1 only" for v in hard]
    full_feasible = f.vertical is not False and (f.tam_size is None or f.tam_size < 500_000)
    tally = dict.fromkeys(SCOPES, 0)
    for v in scope_votes:
        approach = v.approach if v.approach != FULL_TAM or full_feasible else TIERED
        tally[approach] += 1
    if not scope_votes:
        return TIERED, ["no scope facts: Tiered pull (T1/T2 now, T3 later) is the middle road"]
    best = max(SCOPES, key=lambda s: (tally[s], -SCOPES.index(s)))
    reasons = [f"{v.question}: {v.answer} -> {v.approach}" for v in scope_votes]
    if not full_feasible and any(v.approach == FULL_TAM for v in scope_votes):
        why = "horizontal" if f.vertical is False else "TAM of 500k+"
        reasons.append(f"Full TAM is not feasible ({why}), so its votes count for Tiered pull")
    counts = ", ".join(f"{s} {tally[s]}" for s in SCOPES if tally[s])
    reasons.append(f"scope votes: {counts} -> {best}")
    return best, reasons


def recommend_approach(facts: ScopingFacts) -> Recommendation:
    """Pick one of the six approaches from the scoping facts (see the module docstring).

    Returns:
        ``Recommendation(approach, reasons, scope, data_approach, also, votes)``:
        ``approach`` is the primary approach, ``scope`` the pull scope (Full TAM / Tiered
        pull / T1 only), ``data_approach`` Historical-data heavy / No historical data or
        None, ``also`` the other approaches that apply.
    """
    vs = votes(facts)
    scope, scope_reasons = _scope(vs, facts)
    data_vote = next((v for v in vs if v.approach in (HISTORICAL, NO_HISTORY)), None)
    data_approach = data_vote.approach if data_vote else None
    cleanup = next((v for v in vs if v.approach == CLEANUP), None)
    forced_t1 = any(v.hard and v.approach == T1_ONLY for v in vs)

    reasons: list[str] = []
    if cleanup:
        primary = CLEANUP
        reasons.append("CRM is messy: dedupe accounts and normalise domains before Market Map")
    elif forced_t1:
        primary = T1_ONLY
    elif data_approach:
        primary = data_approach
    else:
        primary = scope
    if data_vote:
        reasons.append(f"{data_vote.question}: {data_vote.answer} -> {data_vote.approach}")
    reasons.extend(scope_reasons)
    also = list(dict.fromkeys(a for a in (scope, data_approach) if a and a != primary))
    return Recommendation(primary, reasons, scope, data_approach, also, vs)
