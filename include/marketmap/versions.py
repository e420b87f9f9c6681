"""What a stored score was computed with: the rubric and persona versions of a client config.

A lowest-layer module (it imports only the config): the scoring steps write scores under
these versions, and the warehouse (retention), the CRM push, the reports and the analyses
read them back — none of those need the scoring package for it.
"""

from __future__ import annotations

import hashlib
import json

from marketmap.config import ClientConfig


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def rubric_version(cfg: ClientConfig) -> str:
    """``<icp.version>#<hash of rubrics and valuation>``: what a stored score was computed with."""
    payload = {"icp": cfg.icp.model_dump(mode="json"), "valuation": cfg.valuation.model_dump(mode="json")}
    return f"{cfg.icp.version}#{_hash(payload)}"


def persona_version(cfg: ClientConfig) -> str:
    """``personas#<hash of the persona config>``: what a stored contact score was computed with."""
    return f"personas#{_hash(cfg.personas.model_dump(mode='json'))}"
