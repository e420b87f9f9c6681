"""Job-title normalisation: one clean form, a seniority level and a department per title.

CRM titles are free text ("VP, Sales", "Sr. Dir. of Rev Ops", "Head of RevOps @ Acme").
Persona scoring (SPEC §6) compares titles, seniority and department, so every title is
first reduced to a canonical form by the rules below. The rules are tables (module
constants), so they can be read, tested and extended without touching the code.

Rules, applied in this order:

1. **Blank** (None, NaN, whitespace): ``TitleInfo("", None, None)``.
2. **Cut company and tagline**: lower-case; keep only the text before `` @ ``, `` at ``
   or ``|`` ("VP Sales at Acme" -> "vp sales"; "CEO | Board member" -> "ceo").
3. **Punctuation**: ``&`` becomes ``and``; full stops vanish ("Sr." -> "sr", "V.P." ->
   "vp"); every other non-alphanumeric character becomes a space ("VP, Sales",
   "Co-Founder", "Sales/Marketing"); whitespace is collapsed.
4. **Client aliases** (``PersonaConfig.title_aliases``, abbreviation -> expansion) are
   applied first, as whole words or phrases, longest first, so a client can both add
   words ("gtm" -> "go to market") and override a default ("cso" -> "chief security
   officer"). Their expansions then pass through step 5.
5. **Default abbreviations** (:data:`ABBREVIATIONS`): VP, SVP, EVP, AVP, Dir, Sr, Mgr,
   Ops, RevOps, CEO/CFO/COO/CMO/CTO/CRO… expanded as whole words in one pass.
6. **Filler words** (:data:`STOPWORDS`: of, the, for, in, on) are dropped so that
   "Vice President of Sales" and "VP Sales" both become ``vice president sales``.
   The result is :attr:`TitleInfo.clean`; all comparisons use it.
7. **Seniority**: the first matching pattern of :data:`SENIORITY_RULES` wins. Order
   matters: assistants first ("Executive Assistant to the CEO" is not C-level), then
   C-level (chief, president, founder, owner, managing director), VP (vice president
   and "head of"; AVP counts as Director), Director, Manager, Individual Contributor.
   No match: ``None``.
8. **Department**: the first matching keyword group of :data:`DEPARTMENT_RULES` wins,
   most specific first (Revenue Operations before Sales Operations before Sales;
   Marketing before Operations and Product; Executive last so "Founder & Head of Sales"
   is Sales). No match: ``None``.

Choices a RevOps reader should know: "Head of X" counts as VP (it is the VP-equivalent at
the mid-market companies Market Map targets); AVP / Associate or Assistant VP counts as
Director; Chief of Staff counts as Director; CRO ("revenue") counts as Sales; a bare
"EVP" has a seniority but no department.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

SENIORITY_LEVELS = ("C-Level", "VP", "Director", "Manager", "Individual Contributor", "Intern/Assistant")

# Whole-word abbreviation -> expansion (keys are already punctuation-free, lower-case).
ABBREVIATIONS: dict[str, str] = {
    # seniority
    "vp": "vice president",
    "svp": "senior vice president",
    "evp": "executive vice president",
    "avp": "associate vice president",
    "dir": "director",
    "sr": "senior",
    "snr": "senior",
    "jr": "junior",
    "mgr": "manager",
    "mngr": "manager",
    "mgmt": "management",
    "asst": "assistant",
    "assoc": "associate",
    "exec": "executive",
    "gm": "general manager",
    "md": "managing director",
    "pres": "president",
    "cofounder": "co founder",
    # C-suite
    "ceo": "chief executive officer",
    "cfo": "chief financial officer",
    "coo": "chief operating officer",
    "cmo": "chief marketing officer",
    "cto": "chief technology officer",
    "cro": "chief revenue officer",
    "cio": "chief information officer",
    "cso": "chief sales officer",
    "cco": "chief commercial officer",
    "cpo": "chief product officer",
    "cdo": "chief data officer",
    "ciso": "chief information security officer",
    "chro": "chief human resources officer",
    # functions
    "ops": "operations",
    "revops": "revenue operations",
    "rev": "revenue",
    "salesops": "sales operations",
    "mops": "marketing operations",
    "gtm": "go to market",
    "mktg": "marketing",
    "mkt": "marketing",
    "eng": "engineering",
    "engr": "engineer",
    "biz": "business",
    "bizdev": "business development",
    "bd": "business development",
    "dev": "development",
    "bdr": "business development representative",
    "sdr": "sales development representative",
    "ae": "account executive",
    "am": "account manager",
    "acct": "account",
    "cs": "customer success",
    "csm": "customer success manager",
    "cx": "customer experience",
    "hr": "human resources",
    "it": "information technology",
    "fp and a": "financial planning and analysis",
    "fpa": "financial planning and analysis",
    "intl": "international",
    "natl": "national",
    "coord": "coordinator",
    "spec": "specialist",
    "rep": "representative",
    "svcs": "services",
    "sys": "systems",
}

STOPWORDS = frozenset({"of", "the", "for", "in", "on"})

# (level, regex on the clean title); the first match wins.
SENIORITY_RULES: list[tuple[str, str]] = [
    # "assistant" unless it qualifies a senior role (Assistant Director / Manager / VP)
    (
        "Intern/Assistant",
        r"\b(?:intern|internship|student|trainee|apprentice|working student)\b"
        r"|\bassistant\b(?! (?:vice president|director|manager|general manager|controller|treasurer"
        r"|general counsel))",
    ),
    ("Director", r"\bchief staff\b"),  # "Chief of Staff" after stop-word removal
    (
        "C-Level",
        r"\bchief\b|(?<!vice )\bpresident\b|\bfounder\b|(?<!product )(?<!process )\bowner\b"
        r"|\bmanaging director\b"
        r"|\bmanaging partner\b|\bc level\b",
    ),
    ("Director", r"\b(?:associate|assistant) vice president\b"),
    ("VP", r"\bvice president\b|\bhead\b"),
    ("Director", r"\bdirector\b|\bgeneral manager\b"),
    ("Manager", r"\bmanager\b|\bsupervisor\b|\bteam lead\b|\bteam leader\b"),
    (
        "Individual Contributor",
        r"\b(?:analyst|specialist|engineer|representative|associate|coordinator|consultant|executive"
        r"|administrator|developer|designer|scientist|accountant|architect|strategist|lead|partner"
        r"|officer|generalist|recruiter|planner|advisor|adviser|agent|technician|programmer"
        r"|controller|counsel|attorney|marketer|writer|admin|product owner)\b",
    ),
]

# (department, regex on the clean title); the first match wins, most specific first.
DEPARTMENT_RULES: list[tuple[str, str]] = [
    (
        "Revenue Operations",
        r"\brevenue operations\b|\bgo to market operations\b|\bcommercial operations\b"
        r"|\brevenue (?:strategy|systems)\b",
    ),
    (
        "Sales Operations",
        r"\bsales (?:operations|enablement|strategy|analytics|systems|planning)\b|\bdeal desk\b"
        r"|\bsalesforce (?:administrator|admin|developer)\b|\bcrm\b",
    ),
    (
        "Marketing",
        r"\bmarketing\b|\bdemand generation\b|\bgrowth\b|\bbrand\b|\bcommunications\b|\bcontent\b"
        r"|\bpublic relations\b|\bseo\b|\bevents\b",
    ),
    (
        "Customer Success",
        r"\bcustomer (?:success|experience|support|service|services)\b|\bclient (?:success|services)\b"
        r"|\bsupport\b|\bonboarding\b|\bimplementation\b",
    ),
    (
        "Finance",
        r"\bfinance\b|\bfinancial\b|\baccounting\b|\baccountant\b|\bcontroller\b|\btreasur(?:er|y)\b"
        r"|\baudit\b|\btax\b|\bpayroll\b",
    ),
    (
        "Human Resources",
        r"\bhuman resources\b|\bpeople\b|\btalent\b|\brecruit(?:ing|er|ment)\b",
    ),
    ("Legal", r"\blegal\b|\bcounsel\b|\battorney\b|\blawyer\b|\bcompliance\b"),
    (
        "Sales",
        r"\bsales\b|\bbusiness development\b|\baccount (?:executive|manager|management|director)\b"
        r"|\brevenue\b|\bcommercial\b|\bchannel\b|\bpartnerships\b|\bsolutions (?:engineer|consultant)\b"
        r"|\bpre sales\b",
    ),
    ("Product", r"\bproduct\b"),
    (
        "Engineering",
        r"\bengineering\b|\bengineer\b|\bdeveloper\b|\bsoftware\b|\btechnology\b|\binformation\b"
        r"|\bdevops\b|\bdata\b|\barchitect\b|\bsecurity\b",
    ),
    (
        "Operations",
        r"\boperations\b|\boperating\b|\bsupply chain\b|\blogistics\b|\bprocurement\b|\bfacilities\b",
    ),
    (
        "Executive",
        r"\bchief executive\b|(?<!vice )\bpresident\b|\bfounder\b|(?<!product )(?<!process )\bowner\b"
        r"|\bmanaging director\b|\bexecutive director\b|\bgeneral manager\b|\bboard\b",
    ),
]

DEPARTMENTS = tuple(d for d, _ in DEPARTMENT_RULES)

_CUT = re.compile(r"\s+(?:@|at)\s+|\|")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_SENIORITY = [(level, re.compile(p)) for level, p in SENIORITY_RULES]
_DEPARTMENT = [(dept, re.compile(p)) for dept, p in DEPARTMENT_RULES]


@dataclass(frozen=True)
class TitleInfo:
    """A normalised title: ``clean`` comparison form, ``seniority`` and ``department``."""

    clean: str
    seniority: str | None
    department: str | None


def _punctuation(text: str) -> str:
    """Steps 2-3: lower-case, cut the company/tagline, unify punctuation."""
    text = _CUT.split(text.lower(), maxsplit=1)[0]
    text = text.replace("&", " and ").replace(".", "")
    return _NON_WORD.sub(" ", text).strip()


def _phrase_regex(table: Mapping[str, str]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    """One alternation of whole-word phrases, longest first, so "fp and a" beats "a"."""
    lookup = {_punctuation(k): _punctuation(v) for k, v in table.items() if _punctuation(k)}
    if not lookup:
        return None
    keys = sorted(lookup, key=lambda k: (-len(k), k))
    return re.compile(r"(?<![0-9a-z])(?:" + "|".join(map(re.escape, keys)) + r")(?![0-9a-z])"), lookup


_DEFAULT = _phrase_regex(ABBREVIATIONS)


@lru_cache(maxsize=64)
def _alias_regex(aliases: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    return _phrase_regex(dict(aliases))


def _expand(text: str, compiled: tuple[re.Pattern[str], dict[str, str]] | None) -> str:
    if compiled is None or not text:
        return text
    pattern, lookup = compiled
    return pattern.sub(lambda m: lookup[m.group(0)], text)


def _alias_key(aliases: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((aliases or {}).items()))


def clean_title(title: str | None, aliases: Mapping[str, str] | None = None) -> str:
    """Steps 1-6: the comparison form of a title ("VP, Sales" -> "vice president sales")."""
    if title is None or (isinstance(title, float) and title != title):
        return ""
    text = _punctuation(str(title))
    text = _expand(text, _alias_regex(_alias_key(aliases)))
    text = _expand(text, _DEFAULT)
    return " ".join(w for w in text.split() if w not in STOPWORDS)


def seniority_of(clean: str) -> str | None:
    """Step 7 on an already clean title."""
    for level, pattern in _SENIORITY:
        if pattern.search(clean):
            return level
    return None


def department_of(clean: str) -> str | None:
    """Step 8 on an already clean title (or a cleaned CRM department value)."""
    for dept, pattern in _DEPARTMENT:
        if pattern.search(clean):
            return dept
    return None


def normalise_title(title: str | None, aliases: Mapping[str, str] | None = None) -> TitleInfo:
    """Normalise one title (see the module docstring for the rules).

    Args:
        title: the raw CRM title, or None.
        aliases: client abbreviation -> expansion rules (``PersonaConfig.title_aliases``).
    """
    clean = clean_title(title, aliases)
    if not clean:
        return TitleInfo("", None, None)
    return TitleInfo(clean, seniority_of(clean), department_of(clean))


def normalise_titles(series: pd.Series, aliases: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Normalise a column of titles, each distinct title once.

    Returns a DataFrame on the series' index with columns ``clean``, ``seniority`` and
    ``department`` (None where unknown).
    """
    raw = series.astype(object).where(series.notna(), None)
    infos = {t: normalise_title(t, aliases) for t in pd.unique(raw)}
    out = pd.DataFrame(
        {
            "clean": raw.map(lambda t: infos[t].clean),
            "seniority": raw.map(lambda t: infos[t].seniority),
            "department": raw.map(lambda t: infos[t].department),
        },
        index=series.index,
    )
    out = out.astype(object)
    return out.where(out.notna(), None)


def canonical_department(value: str | None, aliases: Mapping[str, str] | None = None) -> str | None:
    """A CRM department value or a configured department name in canonical form.

    "RevOps", "Rev Ops" and "Revenue Operations" all become "Revenue Operations"; a value
    the rules do not know is kept as typed (stripped), so custom departments still match
    config entries spelled the same way.
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    if not text:
        return None
    return department_of(clean_title(text, aliases)) or text
