"""Domain and company-name normalisation.

A website as typed into a CRM (``HTTPS://www.Acme.co.uk:443/about?ref=g2``) is reduced to
its registrable domain (``acme.co.uk``) with the public-suffix list bundled in
tldextract (no network). Private suffixes such as ``blogspot.com`` or ``herokuapp.com``
count as public suffixes, so two companies hosted there are not merged into one.
Internationalised names are kept in Unicode form, so ``xn--mnchen-3ya.de`` and
``münchen.de`` meet.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import tldextract

_LEGAL_SUFFIXES = {
    "inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "company", "gmbh", "ag",
    "plc", "sa", "sas", "bv", "nv", "pty", "srl", "spa", "oy", "ab", "as", "kg", "lp", "llp", "the",
}  # fmt: skip


@lru_cache(maxsize=1)
def _suffix_rules() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """Public-suffix rules: exact suffixes, wildcard parents (``*.ck`` -> ``ck``), exceptions
    (``!www.ck``), and every tail of every rule (a host whose tail is none of these cannot
    match a longer rule, so the search stops there).

    From the list bundled in tldextract: suffix_list_urls=() means no network, ever.
    """
    rules = tldextract.TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)._get_tld_extractor()
    exact, wild, exceptions, tails = set(), set(), set(), set()
    for rule in rules.tlds_incl_private:
        if rule.startswith("!"):
            exceptions.add(rule[1:])
        elif rule.startswith("*."):
            wild.add(rule[2:])
        else:
            exact.add(rule)
        labels = rule.lstrip("!").split(".")
        tails.update(".".join(labels[i:]) for i in range(1, len(labels)))
    return frozenset(exact), frozenset(wild), frozenset(exceptions), frozenset(tails | exact | wild)


def _idna_to_unicode(host: str) -> str:
    labels = []
    for label in host.split("."):
        try:
            labels.append(label.encode("ascii").decode("idna") if label.startswith("xn--") else label)
        except UnicodeError:
            labels.append(label)
    return ".".join(labels)


def _hosts(values: pd.Series) -> pd.Series:
    """Lower-case host names: scheme, userinfo, path, query, fragment, port and dots stripped."""
    s = values.astype("str").str.strip().str.lower()
    s = s.str.replace(r"^[a-z][a-z0-9+.\-]*://", "", regex=True).str.lstrip("/")
    s = s.str.replace(r"[/?#\\ ].*$", "", regex=True)
    s = s.str.replace(r"^.*@", "", regex=True)  # user:password@host, or an e-mail address
    s = s.str.replace(r":[0-9]*$", "", regex=True).str.strip(".")
    puny = s.str.contains("xn--", regex=False)
    if puny.any():
        s = s.copy()
        s[puny] = s[puny].map(_idna_to_unicode)
    return s


def normalise_domains(values: pd.Series) -> pd.Series:
    """Registrable domain of every value (website, URL, host or e-mail); None where there is none.

    Vectorised over the column: for k = 1, 2, … the last k labels of the hosts still in
    play are checked against the public-suffix rules at once; the longest suffix wins and
    the registrable domain is that suffix plus one more label.
    """
    exact, wild, exceptions, rule_tails = _suffix_rules()
    hosts = _hosts(values.where(values.notna(), ""))
    labels = (hosts.str.count(r"\.") + 1).to_numpy()
    best = np.zeros(len(hosts), dtype=np.int64)  # labels in the longest public suffix found
    tails: dict[int, pd.Series] = {}
    parent = pd.Series("", index=hosts.index, dtype="str")
    active = np.flatnonzero(hosts.to_numpy() != "")
    k = 0
    while len(active):
        k += 1
        # RE2 (Arrow) replace keeps this vectorised
        tail = hosts.iloc[active].str.replace(rf"^.*?((?:[^.]+\.){{{k - 1}}}[^.]+)$", r"\1", regex=True)
        tails[k] = tail
        has_k = labels[active] >= k
        is_exception = tail.isin(exceptions).to_numpy()
        is_suffix = tail.isin(exact).to_numpy()
        if k > 1:
            is_suffix = is_suffix | (parent.iloc[active].isin(wild).to_numpy() & ~is_exception)
        best[active] = np.where(is_suffix & has_k, k, best[active])
        # "!city.kawasaki.jp": the exception itself is registrable, its parent is the suffix
        best[active] = np.where(is_exception & has_k, k - 1, best[active])
        parent = pd.Series("", index=hosts.index, dtype="str")
        parent.iloc[active] = tail
        active = active[(labels[active] > k) & (is_suffix | tail.isin(rule_tails).to_numpy())]
    out = np.full(len(hosts), None, dtype=object)
    for k, tail in tails.items():
        # the registrable domain is the (best + 1)-label tail of a host longer than its suffix
        rows = hosts.index.get_indexer(tail.index)
        pick = (best[rows] == k - 1) & (best[rows] > 0) & (labels[rows] >= k)
        out[rows[pick]] = tail.to_numpy(dtype=object)[pick]
    return pd.Series(out, index=values.index, dtype="object")


@lru_cache(maxsize=65536)
def normalise_domain(value: object) -> str | None:
    """Registrable domain of one website, URL, host or e-mail address; None if there is none.

    >>> normalise_domain("HTTPS://www.Acme.co.uk:443/about?ref=g2")
    'acme.co.uk'
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    return normalise_domains(pd.Series([str(value)], dtype="str")).iloc[0]


def normalise_names(values: pd.Series) -> pd.Series:
    """Company names for matching: lower case, no punctuation, no legal-form words (vectorised)."""
    s = values.where(values.notna(), "").astype("str").str.lower().str.replace("&", " and ", regex=False)
    s = s.str.replace(r"[^\p{L}\p{N}\s]+", " ", regex=True).str.replace(r"\s+", " ", regex=True).str.strip()
    legal = "|".join(sorted(_LEGAL_SUFFIXES))
    # legal forms end a name ("Acme Co Ltd"); "the" starts one. "Co-op Bank" keeps its "co".
    kept = s.str.replace(rf"(?: (?:{legal}))+$", "", regex=True).str.replace(r"^the ", "", regex=True)
    return kept.where(kept != "", s)  # a name made only of legal words stays as it is


def normalise_name(value: object) -> str:
    """:func:`normalise_names` for one value."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return normalise_names(pd.Series([str(value)], dtype="str")).iloc[0]
