"""The JSON encodings that Baygate hashes or stores: the idempotency hash and stored form
of a transfer (gateway/transfer_json.py) and the audit journal's records (gateway/audit.py).

Written by orjson, several times faster than the standard library, and byte for byte what
`json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)` writes (with
`sort_keys=True` for `canonical`), so that a hash made by any version of Baygate is made
again the same (tests/test_jsoncodec.py compares the two over generated values). That holds
for the values these encodings carry: str, int, bool, None, lists, tuples and dicts with
str keys. Floats are not among them (money is int minor units, rates are decimal strings;
the two encoders spell some exponents differently). What orjson refuses (an int beyond
64 bits, a non-str key, a lone surrogate) goes to the standard library, which gives its
usual answer or error.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_STD_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_STD_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SORT = orjson.OPT_SORT_KEYS


def canonical(value: Any) -> str:
    """Keys sorted at every level, no spaces, non-ASCII as itself: the hashed form."""
    try:
        return orjson.dumps(value, option=_SORT).decode()
    except orjson.JSONEncodeError:
        return _STD_CANONICAL.encode(value)


def compact(value: Any) -> str:
    """Keys in insertion order, no spaces, non-ASCII as itself."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _STD_COMPACT.encode(value)


def loads(data: str | bytes) -> Any:
    return orjson.loads(data)
