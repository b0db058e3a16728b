"""Theory of operation: the two-phase transfer.

A transfer is RESERVED when the engine accepts it: the payer's leg amount is added to its
reserved amount, nothing is posted yet. Exactly one of three events then ends it:

    RESERVED --commit, before expires_at--> COMMITTED   legs posted to the ledger, window stamped
    RESERVED --commit, at/after expires_at-> EXPIRED    a late accept does not commit
    RESERVED --abort, before expires_at---> ABORTED    the receiving provider rejected it
    RESERVED --abort, at/after expires_at-> EXPIRED    the timeout came first
    RESERVED --expire, at/after expires_at-> EXPIRED    timeout: reservation released

Time decides first: once `expires_at` is reached the only possible end is EXPIRED, whether
the expiry sweep, a late accept or a late rejection arrives first.

COMMITTED, ABORTED and EXPIRED are final: any later event leaves the state as it is and
reports it (idempotent), so a retried or racing request can never post or release twice.
A request refused at reservation is never stored here (the gateway records the rejection).

The table below is the whole machine; the engine and the store both call `transition`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from clearing.model import TransferState


class Event(StrEnum):
    COMMIT = "commit"
    ABORT = "abort"
    EXPIRE = "expire"


_S = TransferState

# (state, event, expired?) -> next state. Missing entries mean "no change".
TRANSITIONS: dict[tuple[TransferState, Event, bool], TransferState] = {
    (_S.RESERVED, Event.COMMIT, False): _S.COMMITTED,
    (_S.RESERVED, Event.COMMIT, True): _S.EXPIRED,
    (_S.RESERVED, Event.ABORT, False): _S.ABORTED,
    (_S.RESERVED, Event.ABORT, True): _S.EXPIRED,
    (_S.RESERVED, Event.EXPIRE, True): _S.EXPIRED,
}


def is_expired(expires_at: datetime, now: datetime) -> bool:
    return now >= expires_at


def transition(
    state: TransferState, event: Event, expires_at: datetime, now: datetime
) -> TransferState | None:
    """The next state, or None when the event changes nothing (final state, or not yet due)."""
    return TRANSITIONS.get((state, event, is_expired(expires_at, now)))
