"""Domain and company-name normalisation.

A website as typed into a CRM (``HTTPS://www.Acme.co.uk:443/about?ref=g2``) is reduced to
its registrable domain (``acme.co.uk``) with the public-suffix list bundled in
tldextract (no network). Private suffixes such as ``blogspot.com`` or ``herokuapp.com``
count as public suffixes, so two companies hosted there are not merged into one.
Internationalised names are kept in Unicode form, so ``xn--mnchen-3ya.de`` and
``münchen.de`` meet.
"""

from __future__ import annotations

import html
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import tldextract

_LEGAL_SUFFIXES = {
    "inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "company", "gmbh", "ag",
    "plc", "sa", "sas", "bv", "nv", "pty", "srl", "spa", "oy", "ab", "as", "kg", "lp", "llp", "the",
    "cos", "companies", "group", "holdings", "holding", "se", "sarl", "ltda", "kk", "pte", "bhd", "sdn",
    "oyj", "asa", "aps", "gmbh and co kg", "and co", "and company", "mbh", "ug", "sro", "zoo", "pvt",
}  # fmt: skip
# Names that say nothing about the company: never queued as look-alikes of each other.
PLACEHOLDER_NAMES = (
    r"^(?:unknown|n ?a|na|none|null|nil|tbd|tba|tbc|test|testing|dummy|sample|example|demo|delete|deleted|"
    r"do not use|dont use|duplicate|dup|no name|noname|company|account|customer|client|prospect|lead|"
    r"individual|private|personal|self employed|freelance|freelancer|x+|[0-9 ]+)"
    r"(?: (?:account|company|customer|client|record|co|inc|ltd|llc))?(?: ?[0-9]+)?$"
)
HOSTS_FILE = Path(__file__).with_name("data") / "not_company_hosts.txt"


@lru_cache(maxsize=1)
def _suffix_rules() -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """Public-suffix rules as Arrow value sets: exact suffixes, wildcard parents (``*.ck`` ->
    ``ck``), exceptions (``!www.ck``), and every tail of every rule (a host whose tail is none
    of these cannot match a longer rule, so the search stops there).

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
    as_array = lambda values: pa.array(sorted(values), type=pa.large_string())  # noqa: E731
    return as_array(exact), as_array(wild), as_array(exceptions), as_array(tails | exact | wild)


def _idna_to_unicode(host: str) -> str:
    labels = []
    for label in host.split("."):
        try:
            labels.append(label.encode("ascii").decode("idna") if label.startswith("xn--") else label)
        except UnicodeError:
            labels.append(label)
    return ".".join(labels)


def _arrow(values: pd.Series) -> pa.Array:
    """The column as one Arrow large_string array (nulls kept)."""
    arr = pa.array(values.astype("object").where(values.notna(), None).to_numpy(), type=pa.large_string()) \
        if values.dtype == object else pa.array(values, type=pa.large_string())  # fmt: skip
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _hosts(arr: pa.Array) -> pa.Array:
    """Lower-case host names: scheme, userinfo, path, query, fragment, port and dots stripped."""
    s = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
    s = pc.utf8_ltrim(pc.replace_substring_regex(s, r"^[a-z][a-z0-9+.\-]*://", ""), "/")
    s = pc.replace_substring_regex(s, r"[/?#\\ ].*$", "")
    s = pc.replace_substring_regex(s, r"^.*@", "")  # user:password@host, or an e-mail address
    s = pc.utf8_trim(pc.replace_substring_regex(s, r":[0-9]*$", ""), ".")
    puny = pc.fill_null(pc.match_substring(s, "xn--"), False)
    if pc.any(puny).as_py():
        fixed = [
            _idna_to_unicode(h) if f and h else h
            for h, f in zip(s.to_pylist(), puny.to_pylist(), strict=True)
        ]
        s = pa.array(fixed, type=pa.large_string())
    return s


def _registrable(hosts: pa.Array) -> np.ndarray:
    """Registrable domain of each (distinct, non-null) host; None where there is none."""
    exact, wild, exceptions, rule_tails = _suffix_rules()
    n = len(hosts)
    # Labels of each host, last label first: the k-label tail is the first k of them, reversed back.
    rev_labels = pc.split_pattern(pc.utf8_reverse(hosts), ".")
    labels = pc.list_value_length(rev_labels).to_numpy(zero_copy_only=False)
    dot = pa.scalar(".", pa.large_string())
    best = np.zeros(n, dtype=np.int64)  # labels in the longest public suffix found
    out = np.full(n, None, dtype=object)
    active = np.flatnonzero(pc.greater(pc.utf8_length(hosts), 0).to_numpy(zero_copy_only=False))
    parent = None  # the previous step's tails of the rows still active
    k = 0
    while len(active):
        k += 1
        tail = pc.utf8_reverse(pc.binary_join(pc.list_slice(rev_labels.take(active), 0, k), dot))
        has_k = labels[active] >= k
        # the registrable domain is the (best + 1)-label tail of a host longer than its suffix
        done = (best[active] == k - 1) & (best[active] > 0) & has_k
        out[active[done]] = np.asarray(tail.filter(pa.array(done)).to_pylist(), dtype=object)
        is_exception = pc.is_in(tail, value_set=exceptions).to_numpy(zero_copy_only=False)
        is_suffix = pc.is_in(tail, value_set=exact).to_numpy(zero_copy_only=False)
        if parent is not None:
            is_suffix = is_suffix | (
                pc.is_in(parent, value_set=wild).to_numpy(zero_copy_only=False) & ~is_exception
            )
        best[active] = np.where(is_suffix & has_k, k, best[active])
        # "!city.kawasaki.jp": the exception itself is registrable, its parent is the suffix
        best[active] = np.where(is_exception & has_k, k - 1, best[active])
        exc_rows = is_exception & has_k
        out[active[exc_rows]] = np.asarray(tail.filter(pa.array(exc_rows)).to_pylist(), dtype=object)
        keep = (labels[active] > k) & (
            is_suffix | pc.is_in(tail, value_set=rule_tails).to_numpy(zero_copy_only=False)
        )
        active, parent = active[keep], tail.filter(pa.array(keep))
    # a host that is itself a public suffix (or has none) has no registrable domain
    out[~((best > 0) & (labels > best))] = None
    return out


def normalise_domains(values: pd.Series) -> pd.Series:
    """Registrable domain of every value (website, URL, host or e-mail); None where there is none.

    Vectorised with Arrow compute over the distinct hosts: for k = 1, 2, … the last k
    labels of the hosts still in play are checked against the public-suffix rules at
    once; the longest suffix wins and the registrable domain is that suffix plus one label.
    """
    if values.empty:
        return pd.Series([], index=values.index, dtype="object")
    return _domains_of_hosts(_hosts(_arrow(values)), values.index)


def _domains_of_hosts(hosts: pa.Array, index: pd.Index) -> pd.Series:
    encoded = pc.dictionary_encode(hosts)
    distinct = _registrable(encoded.dictionary)
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    valid = np.asarray(encoded.indices.is_valid())
    out = np.full(len(index), None, dtype=object)
    out[valid] = distinct[codes[valid]]
    return pd.Series(out, index=index, dtype="object")


@lru_cache(maxsize=65536)
def normalise_domain(value: object) -> str | None:
    """Registrable domain of one website, URL, host or e-mail address; None if there is none.

    >>> normalise_domain("HTTPS://www.Acme.co.uk:443/about?ref=g2")
    'acme.co.uk'
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    return normalise_domains(pd.Series([str(value)], dtype="object")).iloc[0]


def _fold(text: str) -> str:
    """HTML entities decoded, accents removed (``Nestl&eacute;`` -> ``Nestle``)."""
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text


def normalise_names(values: pd.Series) -> pd.Series:
    """Company names for matching (vectorised over distinct values): HTML entities decoded,
    accents removed, lower case, parenthesised qualifiers dropped (``Acme (UK)``), ``&`` as
    ``and``, initials joined (``S.A.`` -> ``sa``), punctuation removed, and trailing legal
    forms and Group/Holdings/Cos words removed (a name made only of them stays as it is)."""
    if values.empty:
        return pd.Series([], index=values.index, dtype="object")
    encoded = pc.dictionary_encode(_arrow(values))
    distinct = encoded.dictionary
    needs_fold = pc.or_(
        pc.invert(pc.string_is_ascii(distinct)), pc.match_substring_regex(distinct, r"&#?[A-Za-z0-9]+;")
    )
    if pc.any(needs_fold).as_py():
        flags = needs_fold.to_pylist()
        distinct = pa.array(
            [
                _fold(v) if f and v is not None else v
                for v, f in zip(distinct.to_pylist(), flags, strict=True)
            ],
            type=pa.large_string(),
        )
    s = pc.utf8_lower(distinct)
    s = pc.replace_substring_regex(s, r"\([^)]*\)|\[[^\]]*\]", " ")
    s = pc.replace_substring_regex(s, r"\.(?:com|net|org|io|co)\b", "")
    s = pc.replace_substring_regex(s, r"\b([a-z])\.", "\\1")  # S.A. -> sa, U.S. -> us
    s = pc.replace_substring(s, "&", " and ")
    s = pc.replace_substring_regex(s, r"[^\p{L}\p{N}\s]+", " ")
    s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r"\s+", " "))
    legal = "|".join(sorted(_LEGAL_SUFFIXES, key=len, reverse=True))
    # legal forms end a name ("Acme Co Ltd"); "the" starts one. "Co-op Bank" keeps its "co".
    kept = pc.replace_substring_regex(pc.replace_substring_regex(s, rf"(?: (?:{legal}))+$", ""), r"^the ", "")
    kept = pc.if_else(pc.equal(kept, ""), s, kept)  # a name made only of legal words stays as it is
    distinct = np.asarray(kept.to_pylist(), dtype=object)
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    valid = np.asarray(encoded.indices.is_valid())
    out = np.full(len(values), "", dtype=object)
    out[valid] = distinct[codes[valid]]
    return pd.Series(out, index=values.index, dtype="object")


def placeholder_names(names_norm: pd.Series) -> np.ndarray:
    """True where a normalised name is a placeholder (Unknown, N/A, Test Account, Customer 001)."""
    arr = pa.array(names_norm.fillna("").astype(object).to_numpy(), type=pa.large_string())
    hit = pc.match_substring_regex(arr, PLACEHOLDER_NAMES)
    return pc.fill_null(hit, True).to_numpy(zero_copy_only=False) | (names_norm.fillna("") == "").to_numpy()


def normalise_name(value: object) -> str:
    """:func:`normalise_names` for one value."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return normalise_names(pd.Series([str(value)], dtype="object")).iloc[0]


# --------------------------------------------------------------------------- hosts that are not a company


def parse_host_entries(lines) -> dict[str, tuple[str, ...]]:
    """``host | Owner, Other owner`` lines (``#`` comments) -> host -> owners' normalised names."""
    parsed: list[tuple[str, list[str]]] = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        host, _, owners = line.partition("|")
        parsed.append(
            (host.strip().lower().removeprefix("www."), [o.strip() for o in owners.split(",") if o.strip()])
        )
    everyone = [n for _, names in parsed for n in names]
    norm = (
        dict(zip(everyone, normalise_names(pd.Series(everyone, dtype="object")), strict=True))
        if everyone
        else {}
    )
    return {host: tuple(norm[n] for n in names) for host, names in parsed}


@lru_cache(maxsize=1)
def not_company_hosts() -> dict[str, tuple[str, ...]]:
    """The package's list of profile, directory, app-store, social, site-builder, shortener and free-mail hosts."""
    return parse_host_entries(HOSTS_FILE.read_text(encoding="utf-8").splitlines())


def company_domains(
    websites: pd.Series, names: pd.Series, extra: list[str] | tuple[str, ...] = ()
) -> tuple[pd.Series, pd.Series]:
    """(registrable domain, why it was dropped) of each record.

    A website on a host that is not the company's own (``linkedin.com/company/acme``,
    ``apps.apple.com/app/…``, ``gmail.com``, ``acme.wixsite.com``) gives no domain and a
    reason — unless the record is the host owner itself (Apple keeps ``apple.com``).
    """
    reasons = pd.Series(None, index=websites.index, dtype="object")
    if websites.empty:
        return normalise_domains(websites), reasons
    hosts = _hosts(_arrow(websites))
    domains = _domains_of_hosts(hosts, websites.index)
    entries = dict(not_company_hosts())
    if extra:
        entries.update(parse_host_entries(extra))
    listed = pa.array(sorted(entries), type=pa.large_string())
    hosts = pc.replace_substring_regex(hosts, r"^www[0-9]*\.", "")
    parent = pc.replace_substring_regex(hosts, r"^[^.]*\.", "")
    reg = pa.array(domains.to_numpy(), type=pa.large_string())
    hit = np.zeros(len(websites), dtype=bool)
    for keys in (hosts, parent, reg):
        hit |= pc.fill_null(pc.is_in(keys, value_set=listed), False).to_numpy(zero_copy_only=False)
    if not hit.any():
        return domains, reasons
    rows = np.flatnonzero(hit)
    host_l, parent_l = hosts.to_pylist(), parent.to_pylist()
    name_norm = normalise_names(names.iloc[rows].astype("object")).to_numpy()
    for n, i in enumerate(rows):
        entry = next(k for k in (host_l[i], parent_l[i], domains.iat[i]) if k in entries)
        owners = entries[entry]
        label = (normalise_domain(entry) or entry).split(".")[0]
        name = name_norm[n]
        if name and (name in owners or name.replace(" ", "") == label):
            continue  # the owner's own record keeps its domain (Apple: apps.apple.com -> apple.com)
        reasons.iat[i] = (
            f"{entry} is a profile, directory, app-store, social, site-builder, link or free-mail host, "
            "not the company's own domain"
        )
        domains.iat[i] = None
    return domains, reasons
