"""Macau FPS: the shared pacs codec with MOP and HKD and Macau member codes (assumed format)."""

from __future__ import annotations

from adapters.mapping import override
from adapters.pacs.adapter import PacsAdapter
from adapters.pacs.mapping import PACS_TABLE
from adapters.pacs.profile import PacsProfile

SCHEME = "mo-fps"
CURRENCIES = frozenset({"MOP", "HKD"})

TABLE = override(
    PACS_TABLE,
    amount={"rule": "with its Ccy attribute: MOP or HKD (any other currency is AM03)"},
    creditor_agent={
        "rule": "ClrSysId/Prtry MOFPS (3 digits) for Macau banks (no ISO external code exists), "
        "ClrSysId/Cd HKNCC for Hong Kong banks, ClrSysId/Cd CNAPS for Mainland banks; in an "
        "inbound message it may be left out when CdtrAcct/Prxy names the payee (+853 mobile or "
        "FPS ID)"
    },
)

PROFILE = PacsProfile(scheme=SCHEME, currencies=CURRENCIES, table=TABLE)


def adapter() -> PacsAdapter:
    return PacsAdapter(PROFILE)
