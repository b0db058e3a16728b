"""A SchemeAdapter over the shared pacs codec, configured by a PacsProfile."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from adapters.base import DecodedMessage, StatusReport
from adapters.pacs import decode, encode, status
from adapters.pacs.profile import PacsProfile
from clearing.model import Transfer


class PacsAdapter:
    media_type = "application/xml"

    def __init__(self, profile: PacsProfile) -> None:
        self.profile = profile
        self.scheme = profile.scheme
        self.currencies = profile.currencies
        self.table = profile.table

    def decode_transfers(self, data: bytes) -> DecodedMessage:
        return decode.decode(self.profile, data)

    def encode_transfer(self, transfer: Transfer, *, msg_id: str, created_at: datetime) -> bytes:
        return encode.encode(self.profile, [transfer], msg_id, created_at)

    def encode_transfers(
        self, transfers: Sequence[Transfer], *, msg_id: str, created_at: datetime
    ) -> bytes:
        return encode.encode(self.profile, transfers, msg_id, created_at)

    def encode_status_report(
        self,
        reports: Sequence[StatusReport],
        *,
        msg_id: str,
        created_at: datetime,
        original_msg_id: str | None,
    ) -> bytes:
        return status.encode(reports, msg_id, created_at, original_msg_id)

    def decode_status_reply(self, data: bytes) -> list[StatusReport]:
        return status.decode(data, self.profile.limits)
