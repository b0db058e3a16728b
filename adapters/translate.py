"""Field-mapping translation between schemes: decode with one adapter, encode with another.

No routing and no FX: the message id and creation time of the source message are kept, every
transaction goes into one message of the target scheme, and a currency the target does not
carry (MOP into hk-fps) is an error like any other field the target cannot hold.
"""

from __future__ import annotations

from adapters.base import TranslationError
from adapters.registry import get_adapter


def translate(source: str, target: str, data: bytes) -> bytes:
    """The message in the target scheme; raises TranslationError (or AdapterError) otherwise."""
    src, dst = get_adapter(source), get_adapter(target)
    message = src.decode_transfers(data)
    problems = message.rejections
    if problems:
        raise TranslationError(problems)
    assert message.msg_id is not None and message.created_at is not None
    transfers = [tx.transfer for tx in message.txs if tx.transfer is not None]
    return dst.encode_transfers(transfers, msg_id=message.msg_id, created_at=message.created_at)
