"""Hong Kong FPS: the shared pacs codec with HKD and CNY, HKNCC members, CNAPS creditor agents."""

from __future__ import annotations

from adapters.mapping import override
from adapters.pacs.adapter import PacsAdapter
from adapters.pacs.mapping import PACS_TABLE
from adapters.pacs.profile import PacsProfile

SCHEME = "hk-fps"
CURRENCIES = frozenset({"HKD", "CNY"})

TABLE = override(
    PACS_TABLE,
    amount={"rule": "with its Ccy attribute: HKD or CNY (any other currency is AM03)"},
    creditor_agent={
        "rule": "ClrSysId/Cd HKNCC (3 digits) for Hong Kong banks, ClrSysId/Cd CNAPS (12 digits) "
        "for Mainland banks, ClrSysId/Prtry MOFPS (3 digits) for Macau banks; in an inbound "
        "message it may be left out when CdtrAcct/Prxy names the payee (Baygate resolves it)"
    },
)

PROFILE = PacsProfile(scheme=SCHEME, currencies=CURRENCIES, table=TABLE)


def adapter() -> PacsAdapter:
    return PacsAdapter(PROFILE)
