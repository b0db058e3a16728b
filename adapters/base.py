"""The face every scheme adapter shows: decoded messages, status reports, errors, the protocol.

An adapter is a pure codec. It turns a scheme's bytes into canonical transfers and back, and it
never reads a clock, a socket or a database: message ids and timestamps are passed in.

Two kinds of failure, kept apart on purpose:
- A bad message from a participant is data. `decode_transfers` never raises on bad input; it
  returns a `DecodedMessage` whose `error` (whole message) or per-transaction `errors` carry an
  ISO 20022 reason code, a message and the field path.
- A canonical transfer that the target scheme cannot carry raises `TranslationError`, with the
  same kind of rejections, so the gateway can answer the sender with a reason instead of losing
  information silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from clearing.model import Transfer, TxStatus
from clearing.reasons import Reason, Rejection


@dataclass(frozen=True)
class DecodedTx:
    """One transaction of an inbound message: a transfer, or the reasons it was refused.

    `transfer` is None exactly when `errors` is non-empty. The ids are given whenever they
    could be read, so that a status report can name the refused transaction.
    `clearing_ref` is the clearing system's reference as given (pacs.008 PmtId/ClrSysRef,
    ibps.101 ClrSysRef). Baygate ignores it in a participant's message, being the clearing
    system that assigns it; in a delivery from Baygate it is Baygate's transfer id, the key
    a receiver deduplicates on.
    """

    index: int
    end_to_end_id: str | None
    tx_id: str | None
    transfer: Transfer | None
    errors: tuple[Rejection, ...]
    clearing_ref: str | None = None

    def __post_init__(self) -> None:
        assert (self.transfer is None) == bool(self.errors), "transfer is None iff errors"


@dataclass(frozen=True)
class DecodedMessage:
    """An inbound credit-transfer message.

    When `error` is set the whole message is refused (bad envelope or group header): no
    transaction in it may be processed, and `txs` (possibly empty) are given for reporting only.
    `instructing_member_id` is the sending participant's clearing member id: the group header's
    instructing agent, else the first transaction's debtor agent (pacs.008), or the IBPS
    `InstgDrctPty`.
    """

    scheme: str
    msg_id: str | None
    instructing_member_id: str | None
    created_at: datetime | None
    error: Rejection | None
    txs: tuple[DecodedTx, ...]
    more_errors: tuple[Rejection, ...] = ()  # further message-level problems after `error`

    @property
    def rejections(self) -> list[Rejection]:
        """Every problem in the message, message-level first, then per transaction in order."""
        found = [self.error, *self.more_errors] if self.error is not None else []
        for tx in self.txs:
            found.extend(tx.errors)
        return found

    @property
    def transfers(self) -> list[Transfer]:
        """The accepted transfers; empty when the message as a whole is refused."""
        if self.error is not None:
            return []
        return [tx.transfer for tx in self.txs if tx.transfer is not None]


@dataclass(frozen=True)
class StatusReport:
    """The status of one transaction (or, with both original ids None, of a whole message)."""

    original_msg_id: str | None
    original_end_to_end_id: str | None
    original_tx_id: str | None
    status: TxStatus
    reason: Reason | None = None
    message: str | None = None
    gateway_id: str | None = None

    @property
    def is_group(self) -> bool:
        return self.original_end_to_end_id is None and self.original_tx_id is None


class AdapterError(Exception):
    """Bytes an adapter cannot turn into the model: the only exception an adapter raises on input.

    `rejection` says why, with a reason code and the path of the offending field.
    """

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.line())
        self.rejection = rejection


class TranslationError(AdapterError):
    """A canonical transfer the target scheme cannot carry without losing information."""

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        assert rejections, "a translation error names at least one reason"
        super().__init__(rejections[0])
        self.rejections = tuple(rejections)

    def __str__(self) -> str:
        return "; ".join(r.line() for r in self.rejections)


@runtime_checkable
class SchemeAdapter(Protocol):
    """What the gateway calls; one instance per scheme, stateless and shareable across tasks."""

    scheme: str
    currencies: frozenset[str]
    media_type: str

    def decode_transfers(self, data: bytes) -> DecodedMessage:
        """Inbound credit transfer(s). Never raises on bad input: problems are data."""
        ...

    def encode_transfer(self, transfer: Transfer, *, msg_id: str, created_at: datetime) -> bytes:
        """Outbound credit transfer to the receiving provider.

        The settlement amount written is `transfer.creditor_amount` when set (what the creditor
        agent receives, in that currency), else `transfer.amount`. Raises TranslationError when
        the scheme cannot carry the transfer.
        """
        ...

    def encode_transfers(
        self, transfers: Sequence[Transfer], *, msg_id: str, created_at: datetime
    ) -> bytes:
        """Several transfers in one outbound message (same rules as `encode_transfer`)."""
        ...

    def encode_status_report(
        self,
        reports: Sequence[StatusReport],
        *,
        msg_id: str,
        created_at: datetime,
        original_msg_id: str | None,
    ) -> bytes:
        """Answer to the sender (pacs.002 / ibps.102)."""
        ...

    def decode_status_reply(self, data: bytes) -> list[StatusReport]:
        """The receiving provider's reply. Raises AdapterError when malformed."""
        ...
