"""Domain and company-name normalisation.

A website as typed into a CRM (``HTTPS://www.Acme.co.uk:443/about?ref=g2``) is reduced to
its registrable domain (``acme.co.uk``) with the public-suffix list bundled in
tldextract (no network). Private suffixes such as ``blogspot.com`` or ``herokuapp.com``
count as public suffixes, so two companies hosted there are not merged into one.
Internationalised names are kept in Unicode form, so ``xn--mnchen-3ya.de`` and
``münchen.de`` meet.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd
import tldextract

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*://")
_PORT = re.compile(r":\d*$")
_LEGAL_SUFFIXES = {
    "inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "company", "gmbh", "ag",
    "plc", "sa", "sas", "bv", "nv", "pty", "srl", "spa", "oy", "ab", "as", "kg", "lp", "llp", "the",
}  # fmt: skip
_NON_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    # suffix_list_urls=() keeps tldextract on its bundled snapshot: no network, ever.
    return tldextract.TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)


def _idna_to_unicode(host: str) -> str:
    if "xn--" not in host:
        return host
    labels = []
    for label in host.split("."):
        try:
            labels.append(label.encode("ascii").decode("idna") if label.startswith("xn--") else label)
        except UnicodeError:
            labels.append(label)
    return ".".join(labels)


def normalise_domain(value: object) -> str | None:
    """Registrable domain of a website, URL, host or e-mail address; None if there is none.

    >>> normalise_domain("HTTPS://www.Acme.co.uk:443/about?ref=g2")
    'acme.co.uk'
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    s = str(value).strip().lower()
    if not s:
        return None
    if "@" in s and "://" not in s:  # an e-mail address: keep what follows the last @
        s = s.rsplit("@", 1)[1]
    s = _SCHEME.sub("", s).lstrip("/")
    for sep in "/?#\\ ":
        s = s.split(sep, 1)[0]
    s = s.rsplit("@", 1)[-1]  # user:password@host
    s = _PORT.sub("", s).strip(".")
    if not s:
        return None
    s = _idna_to_unicode(s)
    ext = _extractor()(s)
    if not ext.suffix or not ext.domain:
        return None
    return f"{ext.domain}.{ext.suffix}"


def normalise_domains(values: pd.Series) -> pd.Series:
    """Vectorised :func:`normalise_domain`: each distinct value is parsed once."""
    uniques = pd.unique(values.dropna())
    mapping = {v: normalise_domain(v) for v in uniques}
    out = values.map(mapping).astype("object")
    return out.where(out.notna(), None)


def normalise_name(value: object) -> str:
    """Company name for matching: lower case, no punctuation, no legal-form words."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    words = _SPACES.sub(" ", _NON_WORD.sub(" ", str(value).lower().replace("&", " and "))).split()
    kept = [w for w in words if w not in _LEGAL_SUFFIXES]
    return " ".join(kept or words)
