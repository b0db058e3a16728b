"""A bounded memory of recently accepted request signatures, to refuse replays.

Theory of operation. A signed request is fresh for a window after its `created` time;
outside that window the freshness check refuses it without help. Inside the window the
only thing that tells a replay from the original is having seen its signature before. So
an entry has to live exactly until its signature would be refused as stale anyway
(`expires_at`, given by the caller), and no longer.

Entries are grouped in one-second buckets by expiry (rounded up, so an entry never leaves
early). Eviction pops whole buckets from a heap of bucket times, which keeps the work per
request constant on average and the memory per entry small (a 16-byte digest, a dict slot
and a list slot).

The size is bounded by `entries_max`. When every slot holds an unexpired entry the cache
does not grow and does not forget an entry early (forgetting would reopen a replay
window): `add` answers FULL and the caller refuses the request as temporarily unavailable.
Size it to the peak accepted request rate times the freshness window.

Pure data: no clock read, no I/O; `now` is passed in.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from enum import Enum


class AddResult(Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    FULL = "full"


def replay_key(key_id: str, signature: bytes) -> bytes:
    """A fixed-size key for (key id, signature bytes): 16 bytes whatever the input sizes.

    BLAKE2b with a length-prefixed key id, so that no two distinct pairs share an input.
    A 128-bit digest makes an accidental collision (a fresh request refused as a replay)
    negligible.
    """
    kid = key_id.encode("utf-8")
    h = hashlib.blake2b(digest_size=16, person=b"baygate-replay")
    h.update(len(kid).to_bytes(2, "big"))
    h.update(kid)
    h.update(signature)
    return h.digest()


class ReplayCache:
    """Signatures seen recently, each kept until it would be stale anyway; bounded in size."""

    def __init__(self, entries_max: int) -> None:
        if entries_max < 1:
            raise ValueError("entries_max must be at least 1")
        self.entries_max = entries_max
        self._expiry: dict[bytes, int] = {}
        self._buckets: dict[int, list[bytes]] = {}
        self._bucket_heap: list[int] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, key: bytes, now: float) -> bool:
        """Whether `key` was added and has not yet expired at `now`."""
        expiry = self._expiry.get(key)
        return expiry is not None and expiry >= now

    def add(self, key: bytes, expires_at: float, now: float) -> AddResult:
        """Remember `key` until `expires_at`, unless already known or the cache is full."""
        self.evict_expired(now)
        if self.seen(key, now):
            return AddResult.DUPLICATE
        if len(self._expiry) >= self.entries_max:
            return AddResult.FULL
        bucket = math.ceil(expires_at)
        members = self._buckets.get(bucket)
        if members is None:
            members = self._buckets[bucket] = []
            heapq.heappush(self._bucket_heap, bucket)
        members.append(key)
        self._expiry[key] = bucket
        return AddResult.ADDED

    def evict_expired(self, now: float) -> int:
        """Drop every entry whose expiry is before `now`; return how many were dropped."""
        dropped = 0
        heap = self._bucket_heap
        while heap and heap[0] < now:
            bucket = heapq.heappop(heap)
            for key in self._buckets.pop(bucket):
                if self._expiry.get(key) == bucket:
                    del self._expiry[key]
                    dropped += 1
        return dropped
