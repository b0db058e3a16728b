"""What differs between the schemes that speak pacs.008: a profile per scheme, one codec."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.mapping import FieldMap
from adapters.xmlsafe import DEFAULT_LIMITS, XmlLimits

TXS_MAX = 10_000  # transactions per message, read or written


@dataclass(frozen=True)
class PacsProfile:
    scheme: str
    currencies: frozenset[str]
    table: tuple[FieldMap, ...]
    limits: XmlLimits = DEFAULT_LIMITS
    txs_max: int = TXS_MAX
