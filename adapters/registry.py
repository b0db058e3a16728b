"""Adapters by scheme id. One stateless instance per scheme, shared by every caller."""

from __future__ import annotations

from functools import cache

from adapters.base import AdapterError, SchemeAdapter
from clearing.reasons import Reason, Rejection

SCHEME_IDS = ("hk-fps", "cn-ibps", "mo-fps")


@cache
def get_adapter(scheme_id: str) -> SchemeAdapter:
    """The adapter for `scheme_id`; an unknown id raises AdapterError (never KeyError)."""
    if scheme_id == "hk-fps":
        from adapters.hk_fps.adapter import adapter as hk

        return hk()
    if scheme_id == "cn-ibps":
        from adapters.cn_ibps.adapter import CnIbpsAdapter

        return CnIbpsAdapter()
    if scheme_id == "mo-fps":
        from adapters.mo_fps.adapter import adapter as mo

        return mo()
    known = ", ".join(SCHEME_IDS)
    raise AdapterError(
        Rejection(Reason.FF01, f"unknown scheme {str(scheme_id)[:40]!r} (known: {known})", "scheme")
    )
