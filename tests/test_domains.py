"""Domain and name normalisation."""

from __future__ import annotations

import pandas as pd
import pytest

from marketmap.ingest.domains import normalise_domain, normalise_domains, normalise_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.com", "acme.com"),
        ("www.Acme.com", "acme.com"),
        ("HTTPS://WWW.ACME.COM/", "acme.com"),
        ("http://acme.com:8080/about/team?ref=g2#top", "acme.com"),
        ("acme.com/?ref=producthunt", "acme.com"),
        ("//acme.com", "acme.com"),
        ("  www.acme.co.uk  ", "acme.co.uk"),
        ("shop.eu.acme.co.uk", "acme.co.uk"),
        ("https://user:secret@acme.io/login", "acme.io"),
        ("info@acme.io", "acme.io"),
        ("acme.com.", "acme.com"),
        ("www.WalkerHensonandCompton.com", "walkerhensonandcompton.com"),
        ("münchen-software.de", "münchen-software.de"),
        ("xn--mnchen-software-zvb.de", "münchen-software.de"),
        ("http://www.MÜNCHEN-software.de/impressum", "münchen-software.de"),
        ("bigco.herokuapp.com", "bigco.herokuapp.com"),
        ("www.city.kawasaki.jp", "city.kawasaki.jp"),  # PSL exception rule
        ("a.b.kawasaki.jp", "a.b.kawasaki.jp"),  # PSL wildcard rule
        ("政府.hk", None),
        ("www.example.政府.hk", "example.政府.hk"),  # private suffix: not merged with all of heroku
        ("", None),
        ("   ", None),
        (None, None),
        (float("nan"), None),
        ("localhost", None),
        ("n/a", None),
        ("acme", None),
    ],
)
def test_normalise_domain(raw, expected):
    assert normalise_domain(raw) == expected


def test_vectorised_matches_scalar_and_keeps_nulls():
    raw = pd.Series(["www.a.com", None, "http://a.com/x", "b.org", "nonsense"])
    out = normalise_domains(raw)
    assert out.tolist() == ["a.com", None, "a.com", "b.org", None]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Acme, Inc.", "acme"),
        ("ACME Inc", "acme"),
        ("The Acme Company LLC", "acme"),
        ("Walker Henson & Compton", "walker henson and compton"),
        ("Inc.", "inc"),  # never reduced to nothing
        (None, ""),
    ],
)
def test_normalise_name(raw, expected):
    assert normalise_name(raw) == expected


def test_agrees_with_tldextract_on_a_corpus():
    """tldextract (per value) is the oracle for the vectorised public-suffix matching."""
    import random

    import tldextract

    ext = tldextract.TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)
    rules = list(ext._get_tld_extractor().tlds_incl_private)
    rng = random.Random(3)
    hosts = []
    for _ in range(3000):
        suffix = rng.choice(rules).lstrip("!").replace("*", rng.choice(["x", "city", "foo"]))
        hosts.append(
            ".".join(rng.choice(["www", "shop", "acme", "b2b"]) for _ in range(rng.randint(0, 3)))
            + "."
            + suffix
        )
    got = normalise_domains(pd.Series(hosts)).tolist()
    want = [ext(h.strip(".")).top_domain_under_public_suffix or None for h in hosts]
    mismatches = [(h, g, w) for h, g, w in zip(hosts, got, want, strict=True) if g != w]
    assert mismatches == []
