"""Custom fields: the codec of the warehouse's ``custom`` column is :mod:`marketmap.warehouse.custom`
(re-exported here); this module adds what ingest and the reports need on top."""

from __future__ import annotations

from marketmap.warehouse.custom import LIST_JOIN, decode, expand

__all__ = ["LIST_JOIN", "decode", "expand", "rubric_fields"]


def rubric_fields(cfg) -> list[str]:
    """The custom account fields the client's rubrics use (vectors, then negative indicators), in order:
    the columns reports show next to the score."""
    custom = {f.name for f in cfg.custom_fields.accounts}
    used = [item.field for r in cfg.icp.rubrics for item in [*r.vectors, *r.negative_indicators]]
    return [f for f in dict.fromkeys(used) if f in custom]
