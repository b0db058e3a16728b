"""Mainland IBPS adapter: CNY only, CNAPS 12-digit participants, the {H:} envelope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from adapters.base import DecodedMessage, StatusReport
from adapters.cn_ibps import decode, encode, receipt
from adapters.cn_ibps.identifiers import member_id_error
from adapters.cn_ibps.mapping import IBPS_TABLE
from adapters.pacs.profile import TXS_MAX
from adapters.xmlsafe import DEFAULT_LIMITS, XmlLimits
from clearing.model import Transfer

SCHEME = "cn-ibps"
# Baygate's own direct participant code on the IBPS side (assumed; configurable): it stands as
# InstgDrctPty / InstdDrctPty when the other end of a transfer is outside CNAPS.
LINK_MEMBER_ID = "999100000019"


class CnIbpsAdapter:
    scheme = SCHEME
    currencies = decode.CURRENCIES
    media_type = "application/vnd.cnaps.ibps"
    table = IBPS_TABLE

    def __init__(
        self,
        link_member_id: str = LINK_MEMBER_ID,
        limits: XmlLimits = DEFAULT_LIMITS,
        txs_max: int = TXS_MAX,
    ) -> None:
        assert member_id_error(link_member_id) is None, "the link participant code is 12 digits"
        self.link_member_id = link_member_id
        self.limits = limits
        self.txs_max = txs_max

    def decode_transfers(self, data: bytes) -> DecodedMessage:
        return decode.decode(data, self.limits, self.txs_max)

    def encode_transfer(self, transfer: Transfer, *, msg_id: str, created_at: datetime) -> bytes:
        return encode.encode([transfer], msg_id, created_at, self.link_member_id, self.txs_max)

    def encode_transfers(
        self, transfers: Sequence[Transfer], *, msg_id: str, created_at: datetime
    ) -> bytes:
        return encode.encode(transfers, msg_id, created_at, self.link_member_id, self.txs_max)

    def encode_status_report(
        self,
        reports: Sequence[StatusReport],
        *,
        msg_id: str,
        created_at: datetime,
        original_msg_id: str | None,
        instructed_member_id: str | None = None,
    ) -> bytes:
        """ibps.102 to the sender; `instructed_member_id` (the sender's code) fills InstdDrctPty."""
        return receipt.encode(
            reports, msg_id, created_at, original_msg_id, self.link_member_id, instructed_member_id
        )

    def decode_status_reply(self, data: bytes) -> list[StatusReport]:
        return receipt.decode(data, self.limits)
