"""The outcome a client measures its ICP against (``maintenance.outcome``), as analysis rows.

``closed_won`` (the default): one row per closed new-business deal; the outcome is "won".
``opportunity_created``: one row per account; the outcome is "a new-business opportunity was
created at the account" (on or after ``outcome.since``). A client with few closed deals — a
young company, a long sales cycle — can still back-test, report and watch drift on the
opportunities its ICP brings in.

Both give the same columns, so the back-test, the executive report, the suggestion and the
drift rules compute rates the same way: ``account_key``, ``closed`` (always true: the row
counts), ``won`` (the outcome happened), ``amount`` (won amount, or the pipeline created),
``cycle_days`` (created -> close of a deal; None for accounts) and ``event_date`` (close date,
or the first qualifying opportunity's created date; None when it did not happen).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

CLOSED_WON = "closed_won"
OPPORTUNITY_CREATED = "opportunity_created"


@dataclass(frozen=True)
class Words:
    """How reports, verdicts and alerts name the outcome."""

    rate: str  # "win rate"
    unit: str  # "closed deals" (what a row is, plural)
    positive: str  # "won deals"
    positive_at: str  # "closed-won deals" / "accounts with an opportunity created"
    verb3: str  # "wins" (T3 ___ more often than T1)
    ing: str  # "winning" (T3 accounts are ___ more often than T1 accounts)
    amount: str  # "closed-won revenue"


WORDS = {
    CLOSED_WON: Words("win rate", "closed deals", "won deals", "closed-won deals", "wins", "winning",
                      "closed-won revenue"),
    OPPORTUNITY_CREATED: Words(
        "opportunity-created rate", "accounts", "accounts with an opportunity created",
        "accounts with an opportunity created", "accounts get opportunities", "getting opportunities",
        "pipeline created",
    ),
}  # fmt: skip


def kind_of(outcome) -> str:
    """The outcome kind of an ``OutcomeConfig``, a kind string or None (closed_won)."""
    if outcome is None:
        return CLOSED_WON
    return outcome if isinstance(outcome, str) else outcome.kind


def words(outcome) -> Words:
    return WORDS[kind_of(outcome)]


def _since(outcome) -> dt.date | None:
    return None if outcome is None or isinstance(outcome, str) else outcome.since


def created_events(opportunities: pd.DataFrame, since: dt.date | None = None) -> pd.DataFrame:
    """New-business opportunities with a created date (on or after ``since``): account_key,
    created (day), amount."""
    from marketmap.analysis.correlation import deal_kind

    o = opportunities
    if o.empty or "created_date" not in o:
        return pd.DataFrame(
            {"account_key": [], "created": pd.Series([], dtype="datetime64[ns]"), "amount": []}
        )
    created = pd.to_datetime(o["created_date"], errors="coerce", utc=True).dt.tz_localize(None).dt.normalize()
    kind = deal_kind(o["opp_type"] if "opp_type" in o else pd.Series(None, index=o.index, dtype=object))
    keep = created.notna() & (kind == "new") & o["account_key"].notna()
    if since is not None:
        keep &= created >= pd.Timestamp(since)
    return pd.DataFrame(
        {
            "account_key": o.loc[keep, "account_key"].astype(object).to_numpy(),
            "created": created[keep].to_numpy(),
            "amount": pd.to_numeric(o.loc[keep, "amount"], errors="coerce").to_numpy()
            if "amount" in o
            else None,
        }
    )


def outcome_rows(opportunities: pd.DataFrame, accounts: pd.Series | None, outcome=None) -> pd.DataFrame:
    """Analysis rows for the outcome (see the module docstring).

    Args:
        opportunities: canonical opportunities.
        accounts: the account keys in scope (required for opportunity_created: every account
            is a row, with or without an opportunity).
        outcome: ``OutcomeConfig``, a kind, or None for closed_won.
    """
    from marketmap.analysis.correlation import prepare_deals

    if kind_of(outcome) == CLOSED_WON:
        deals = prepare_deals(opportunities)
        deals["event_date"] = pd.to_datetime(opportunities.get("close_date"), errors="coerce")
        return deals[deals["closed"] & (deals["kind"] == "new")].reset_index(drop=True)
    keys = pd.Series(pd.unique(pd.Series(accounts, dtype=object).dropna()), dtype=object)
    ev = created_events(opportunities, _since(outcome))
    first = ev.groupby("account_key")["created"].min()
    pipeline = ev.groupby("account_key")["amount"].sum(min_count=1)
    return pd.DataFrame(
        {
            "account_key": keys.to_numpy(),
            "closed": True,
            "won": keys.isin(first.index).to_numpy(),
            "amount": keys.map(pipeline).to_numpy(dtype=float),
            "kind": "new",
            "cycle_days": float("nan"),
            "loss_reason": None,
            "event_date": pd.to_datetime(keys.map(first)).to_numpy(),
        }
    )
