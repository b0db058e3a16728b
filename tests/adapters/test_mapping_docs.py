"""The mapping tables say what the codecs do, and the scheme pages say what the tables say."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from lxml import etree

from adapters import mapping_doc
from adapters.cn_ibps import mapping as ibps
from adapters.mapping import FIELD_NAMES
from adapters.pacs import mapping as pacs
from adapters.registry import get_adapter
from adapters.walk import schema_paths
from clearing.model import Account, Agent, Party, PartyId, PartyIdType, Proxy, ProxyType, Transfer
from clearing.money import Money
from tests.adapters.helpers import HKT, SCHEMES, sample_transfer

NAMESPACES = {"hk-fps": pacs.NS_PACS008, "mo-fps": pacs.NS_PACS008, "cn-ibps": ibps.NS_IBPS101}
DECODER_PATHS = {
    "hk-fps": {f"GrpHdr/{p}" for p in schema_paths(pacs.GRPHDR_SCHEMA)}
    | {f"CdtTrfTxInf/{p}" for p in schema_paths(pacs.TX_SCHEMA)},
    "cn-ibps": {f"GrpHdr/{p}" for p in schema_paths(ibps.GRPHDR_SCHEMA)}
    | {f"CstmrCdtTrfInf/{p}" for p in schema_paths(ibps.TX_SCHEMA)},
}
DECODER_PATHS["mo-fps"] = DECODER_PATHS["hk-fps"]


def every_field_set(scheme: str) -> Transfer:
    """A transfer with every optional field given, so each documented path must appear."""
    currency = {"hk-fps": "HKD", "cn-ibps": "CNY", "mo-fps": "MOP"}[scheme]
    return sample_transfer(
        scheme,
        id="BG-1",
        instr_id="INSTR-1",
        uetr="3f0c1f0e-9a55-4b6e-8a3e-1c2d3e4f5a6b",
        amount=Money(100_00, "USD"),
        creditor_amount=Money(780_00, currency),
        exchange_rate="7.8",
        purpose="GDDS",
        category_purpose="SUPP",
        priority="urgent",
        charge_bearer="SLEV",
        debtor=Party("张伟", PartyId(PartyIdType.CN_RIC, "440305199003071236")),
        creditor=Party("陳美玲", PartyId(PartyIdType.HKID, "A1234563")),
        debtor_account=Account("6222020200012345678", Proxy(ProxyType.MOBILE, "+86-13800138000")),
        creditor_account=Account("50012345678", Proxy(ProxyType.EMAIL, "mei@example.hk")),
        creditor_agent=Agent("HKNCC", "004", "Example Bank (Hong Kong)"),
    )


def alternatives(path: str) -> list[str]:
    m = re.search(r"\{([^}]*)\}", path)
    if m is None:
        return [path]
    return [
        alt
        for choice in m.group(1).split(",")
        for alt in alternatives(path[: m.start()] + choice + path[m.end() :])
    ]


def document(scheme: str) -> etree._Element:
    data = get_adapter(scheme).encode_transfer(
        every_field_set(scheme), msg_id="M-1", created_at=datetime(2025, 6, 22, tzinfo=HKT)
    )
    return etree.fromstring(data[data.index(b"<?xml") :])[0]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_canonical_field_has_a_row(scheme: str) -> None:
    assert tuple(r.field for r in mapping_doc.TABLES[scheme]) == FIELD_NAMES


@pytest.mark.parametrize("scheme", SCHEMES)
def test_documented_paths_are_written_by_the_encoder(scheme: str) -> None:
    top = document(scheme)
    ns = {"s": NAMESPACES[scheme]}
    for r in mapping_doc.TABLES[scheme]:
        if r.direction == "in":
            continue
        for path in r.paths:
            found = [
                alt
                for alt in alternatives(path)
                if top.xpath("/".join(f"s:{step}" for step in alt.split("/")), namespaces=ns)
            ]
            assert found, f"{scheme} {r.field}: {path} not in the encoded message"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_documented_paths_are_read_by_the_decoder(scheme: str) -> None:
    for r in mapping_doc.TABLES[scheme]:
        if r.direction == "out":
            continue
        for path in r.paths:
            assert any(alt in DECODER_PATHS[scheme] for alt in alternatives(path)), (
                f"{scheme} {r.field}: {path}"
            )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fields_not_carried_say_why(scheme: str) -> None:
    for r in mapping_doc.TABLES[scheme]:
        if not r.paths:
            assert len(r.rule) > 20, f"{scheme} {r.field} needs a rule"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_pages_are_up_to_date(scheme: str) -> None:
    page = (mapping_doc.DOCS / f"{scheme}.md").read_text(encoding="utf-8")
    assert mapping_doc.updated(page, scheme) == page, "run: python -m adapters.mapping_doc"
