"""What a rule returns: a candidate alert with its numbers, next steps and a stable fingerprint.

Rules are pure functions of warehouse data (see ``marketmap.analysis``); they never send
anything. The store (:mod:`marketmap.alerts.store`) decides whether a candidate is new,
unchanged, materially changed or gone (resolved).

A candidate is ``firing`` (the condition is established: send it) or ``holding`` (the
point estimate still shows the condition but the evidence no longer clears the bar).
A holding candidate keeps an open alert open without a message and never opens one:
that hysteresis stops an alert from flapping resolved/fired on noise. A ``cleared``
candidate says the rule was evaluated and its condition no longer holds: it opens
nothing, and an open alert resolves with the candidate's (current) numbers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
Role = Literal["revops", "leadership"]

# Seed 001 refinement-trigger table and SPEC §10: what a person should do for each rule.
NEXT_STEPS: dict[str, list[str]] = {
    "t3_beats_t1": [
        "Re-engage the ICP specialist: T3 is closing at a higher rate than T1.",
        "Adjust the ICP criteria to what is actually closing (correlation report), bump `icp.version`, re-score.",
    ],
    "t2_beats_t1": [
        "Aspirational T1 is not matching buying patterns: consider flipping tiers "
        "(keep the middle as T1, the edges become T2/T3).",
        "Review the T1 vectors with sales leadership before the next quarterly refresh.",
    ],
    "lift_below_min": [
        "The tiers are not discriminating: review vector weights and negative indicators.",
        "Re-run the back-test and correlation analysis; re-score with a new rubric version.",
    ],
    "t1_cycle_not_shortest": [
        "T1 accounts are not closing fastest: check deal-potential and timing vectors.",
        "Bring the cycle-by-tier numbers to the next refinement check-in.",
    ],
    "valuation_divergence": [
        "Review the proposed coefficient with RevOps and sales leadership.",
        "Apply it with a manual run of the valuation DAG with `apply_valuation=true` "
        "(re-scores and pushes), then commit the coefficients to the client YAML.",
    ],
    "territory_imbalance": [
        "Review the rebalancing proposal (CSV): it moves as few accounts as possible.",
        "Apply it with a manual run of the territories DAG with `approve_rebalance=<the proposal id>` "
        "(owner changes are pushed to the CRM).",
    ],
    "territory_ownership_unclear": [
        "Decide with sales leadership what a territory is here: the accounts a rep owns, the deals they work, "
        "or their pipeline; set `maintenance.territory_value` to match.",
        "Assign owners to the accounts that have none (the territory report lists them).",
    ],
    "territory_check_unavailable": [
        "Fix what the check needs (reps in the config or the CRM, owned and valued accounts), "
        "then re-run the territories DAG.",
    ],
    "inactive_rep_owns_accounts": [
        "Accounts are owned by a rep who left: review the reassignment in the rebalancing proposal.",
        "Apply it with `approve_rebalance=<the proposal id>` on the territories DAG.",
    ],
    "credit_burn_above_pace": [
        "Check which runs and providers spent the credits (burn report).",
        "Pause or narrow enrichment (T1 only) until the month's pace catches up.",
    ],
    "credit_budget_reached": ["Raise the budget or narrow enrichment to T1 accounts."],
    "runaway_enrichment": [
        "An enrichment run spent far more than usual: check for accounts paid for twice or a loop.",
        "Fix the cause before the next monthly run; ask the provider to credit duplicate charges.",
    ],
    "duplicate_charges": [
        "The same account was paid for twice this month: check the enrichment cache and refresh age.",
    ],
    "credits_per_account_jump": [
        "Credits per enriched account jumped: check the waterfall order and provider prices.",
    ],
    "duplicates": [
        "Merge the duplicates in the CRM (the audit CSV lists them), then re-run the monthly DAG."
    ],
    "unnormalised_domains": ["Fix the listed websites in the CRM; the next monthly run normalises them."],
    "blank_tier_valuation": [
        "Find why accounts lack a tier or valuation (enrichment gaps, failed pushes) and re-run scoring.",
    ],
    "picklist_rejected": [
        "Align the push picklist translation with the CRM's values (`push.fields[].picklist`), re-run the push.",
    ],
    "untiered_new_accounts": [
        "New accounts were not tiered within the allowed days: check the monthly extract and enrichment.",
    ],
    "stale_accounts": ["Review the round-robin reassignment proposal with sales leadership."],
    "persona_coverage_low": [
        "Under the minimum share of T1 accounts have a Tier-1 persona: broaden the persona titles.",
        "The quarterly run enriched the gap accounts; check the coverage before/after numbers.",
    ],
    "provider_switch": ["Trial the recommended provider order for a month and compare the burn report."],
    "refinement_checkin": [
        "Decide ownership: can the architect handle the check-in, or is a specialist needed?",
        "Pull closed won/lost by tier and the territory valuation report; prepare talking points.",
    ],
    "icp_validation_review": [
        "Run the ICP validation review: back-test, correlation refresh, valuation recalibration.",
    ],
}


def fingerprint(client_id: str, rule: str, key: str = "") -> str:
    """Stable id of a condition: the same rule about the same thing gives the same fingerprint."""
    digest = hashlib.sha256(f"{client_id}|{rule}|{key}".encode()).hexdigest()[:12]
    return f"{rule}:{digest}"


@dataclass
class Alert:
    """A candidate alert produced by a rule.

    Attributes:
        rule: the rule name (also picks the next steps).
        key: what the condition is about (a tier pair, a month, a check-in date); with the
            client and rule it makes the fingerprint.
        role: the stakeholder role that acts on it (the architect always gets a copy).
        numbers: everything shown in the message.
        material: the few numbers whose material change re-sends an open alert.
        confidence: how sure the rule is, in words, with the test used.
        holding: see the module docstring.
        resolve_notice: send "resolved" when the condition clears (reminders don't).
        cleared: the condition no longer holds; the numbers are today's (see the module docstring).
    """

    client_id: str
    rule: str
    title: str
    role: Role = "revops"
    severity: Severity = "warning"
    key: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)
    material: dict[str, float] = field(default_factory=dict)
    confidence: str | None = None
    next_steps: list[str] | None = None
    report: str | None = None
    holding: bool = False
    resolve_notice: bool = True
    cleared: bool = False

    @property
    def firing(self) -> bool:
        return not self.holding and not self.cleared

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.client_id, self.rule, self.key)

    def steps(self) -> list[str]:
        return self.next_steps if self.next_steps is not None else NEXT_STEPS.get(self.rule, [])

    def payload(self) -> dict:
        """What the store keeps in ``alerts.numbers`` (JSON)."""
        return {
            "numbers": jsonable(self.numbers),
            "material": jsonable(self.material),
            "confidence": self.confidence,
            "next_steps": self.steps(),
            "report": self.report,
            "key": self.key,
            "resolve_notice": self.resolve_notice,
        }


def jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars and NaN become float/None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def materially_changed(
    old: dict[str, Any], new: dict[str, Any], rel: float = 0.25, share: float = 0.10
) -> bool:
    """Whether any material number moved enough to tell people again.

    Shares (values within [0, 1] on both sides) must move by ``share`` (10 points); other
    numbers by ``rel`` (25%) of the old value. A number appearing or disappearing counts.
    """
    for k in set(old) | set(new):
        a, b = old.get(k), new.get(k)
        if a is None or b is None:
            if a is not b:
                return True
            continue
        a, b = float(a), float(b)
        if 0 <= a <= 1 and 0 <= b <= 1:
            if abs(a - b) >= share:
                return True
        elif abs(a - b) > rel * max(abs(a), 1e-9):
            return True
    return False
