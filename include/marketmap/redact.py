"""Keep secrets out of logs, outbox files and Slack: mask anything that looks like one."""

from __future__ import annotations

import re

_PATTERNS = [
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),  # user:password@host in URLs
    (re.compile(r"\bxox[abposr]-[0-9A-Za-z-]+"), "xox*-***"),  # Slack tokens
    (re.compile(r"\bpat-(na|eu)\d-[0-9a-f-]+", re.I), "pat-***"),  # HubSpot private-app tokens
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(?i)((?:password|passwd|secret|token|api[_-]?key|access[_-]?token|session[_-]?id)\s*[=:]\s*)[^\s,;&'\"]+"),
     r"\1***"),
]  # fmt: skip


def redact(text: object) -> str:
    """The text with credentials masked."""
    s = str(text)
    for pattern, repl in _PATTERNS:
        s = pattern.sub(repl, s)
    return s
