"""The audit journal: an append-only, hash-chained record of accepted messages and state changes.

Theory of operation
-------------------
Record n holds `seq` = n, `kind`, `subject`, `at`, `data` and `prev_hash` = the hash of record
n - 1 (32 zero bytes for record 1), and `hash` = SHA-256 of the canonical encoding of those six
fields: compact JSON with sorted keys, `at` as ISO 8601 UTC with microseconds and a `Z`, the
hashes as lower-case hex. Changing, removing or inserting a record changes a hash that a later
record, or the head row, still names, so `verify` notices.

Appending (`append`) happens inside the caller's own transaction, once per batch, in one
statement (one round trip, so that the head is held as briefly as possible):

1. `SELECT ... FROM audit_head FOR UPDATE` reads the head and takes its row lock, which stays
   held until the caller commits or rolls back;
2. the hashes of the batch are chained from that head in SQL (`sha256` of the same canonical
   text `record_hash` spells: Python sends each record's text around the previous hash and
   the sequence number);
3. the batch is inserted (`unnest` of arrays) and the head moved.

The lock serializes appenders, so sequence numbers come from the head row without gaps, a
rolled-back batch leaves nothing behind, and the chain order is the commit order: a reader
never sees record n + 1 committed while record n is not. The price is that appenders queue on
one row: call `append` last in the transaction, just before the commit. Under REPEATABLE READ or
SERIALIZABLE a concurrent append makes step 1 fail with a serialization error, to be retried
like any other.

The database refuses UPDATE, DELETE and TRUNCATE on the journal and any move of the head
backwards. Only someone who can bypass that (a superuser disabling triggers, an edit of the
data files) can tamper, and `verify` is there for them. A tamperer who rewrites every hash after
an edit, and the head too, leaves a consistent chain: that is caught only against a head
published earlier (`anchors`), which is why settlement manifests carry the head at close.

Data must carry no personal data in clear: callers pass ids, hashes, amounts and states.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import asyncpg

from gateway import jsoncodec
from gateway.clearing_sql import Ctes, statement

KIND_MESSAGE_ACCEPTED = "message.accepted"
KIND_TRANSFER_STATE = "transfer.state"

GENESIS_HASH = "0" * 64
EVENTS_PER_APPEND_MAX = 8_192
DATA_BYTES_MAX = 8 * 1024
DATA_DEPTH_MAX = 16
SUBJECT_CHARS_MAX = 128
INT_ABS_MAX = 2**63 - 1
PROBLEMS_MAX = 100
VERIFY_BATCH_ROWS_MAX = 100_000
CLI_CONNECT_TIMEOUT_S = 10.0

_KIND_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_KIND_CHARS_MAX = 64
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_SEQ_RE = re.compile(r"[0-9]{1,19}")


class AuditError(Exception):
    """A programmer error at the journal's door: a malformed event, or an append outside a
    transaction. Never a business rejection: those are recorded, not refused."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record of the chain: its sequence number and hash (hex). Seq 0 = empty."""

    seq: int
    hash: str

    def __str__(self) -> str:
        """`<seq>:<hash>`, the form published in settlement manifests."""
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> ChainHead:
        seq, sep, digest = text.strip().partition(":")
        if not sep or _SEQ_RE.fullmatch(seq) is None or _HEX64_RE.fullmatch(digest) is None:
            raise ValueError(f"chain head {text!r} is not <seq>:<64 hex digits>")
        return cls(int(seq), digest)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing to journal. `data` is encoded (and checked) once, here: later changes to the
    mapping passed in do not reach the journal.

    `data` holds JSON values without floats (money is int minor units, rates are strings), so
    that what PostgreSQL's JSONB gives back encodes to the same bytes that were hashed."""

    kind: str
    subject: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    data_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or len(self.kind) > _KIND_CHARS_MAX:
            raise AuditError(f"kind {self.kind!r} must be a short dotted name")
        if _KIND_RE.fullmatch(self.kind) is None:
            raise AuditError(f"kind {self.kind!r} must look like 'transfer.state'")
        _check_text(self.subject, "subject")
        if not 1 <= len(self.subject) <= SUBJECT_CHARS_MAX:
            raise AuditError(f"subject must have 1 to {SUBJECT_CHARS_MAX} characters")
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise AuditError("at must be a timezone-aware datetime")
        try:
            at_text(self.at)
        except OverflowError:
            raise AuditError(f"at {self.at} is out of range in UTC") from None
        if not isinstance(self.data, Mapping):
            raise AuditError("data must be a mapping")
        _check_value(self.data, "data", 0)
        encoded = canonical_json(self.data)
        if len(encoded.encode()) > DATA_BYTES_MAX:
            raise AuditError(f"data of {self.kind} {self.subject} exceeds {DATA_BYTES_MAX} bytes")
        object.__setattr__(self, "data_json", encoded)


def _check_text(value: Any, path: str) -> None:
    problem = _text_problem(value)
    if problem is not None:
        raise AuditError(f"{path}: {problem}")


def _text_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    if "\x00" in value:
        return "NUL characters cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode (lone surrogate)"
    return None


def _check_value(value: Any, path: str, depth: int) -> None:
    problem = _value_problem(value, depth)
    if problem is not None:
        where, text = problem
        raise AuditError(f"{path}{where}: {text}")


def _str_problem(value: str) -> tuple[str, str] | None:
    problem = _text_problem(value)
    return None if problem is None else ("", problem)


def _value_problem(value: Any, depth: int) -> tuple[str, str] | None:
    """JSON without floats, bounded depth and integer size: what survives JSONB unchanged.
    Returns (path below `value`, what is wrong); paths are spelled only on the way out of a
    failure, so that a valid record costs no string building."""
    if depth > DATA_DEPTH_MAX:
        return "", f"nested deeper than {DATA_DEPTH_MAX}"
    kind = type(value)  # exact types first: most values are plain str and int
    if kind is str:
        return None if "\x00" not in value and value.isascii() else _str_problem(value)
    if kind is int:
        return (
            None
            if -INT_ABS_MAX <= value <= INT_ABS_MAX
            else ("", "integer outside the 64-bit range")
        )
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= INT_ABS_MAX else ("", "integer outside the 64-bit range")
    if isinstance(value, str):
        return _str_problem(value)
    if isinstance(value, dict | Mapping):
        for key, item in value.items():
            problem = _text_problem(key)
            if problem is not None:
                return f" key {key!r}", problem
            below = _value_problem(item, depth + 1)
            if below is not None:
                return f".{key}{below[0]}", below[1]
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            below = _value_problem(item, depth + 1)
            if below is not None:
                return f"[{i}]{below[0]}", below[1]
        return None
    hint = (
        " (money is int minor units, rates are decimal strings)" if isinstance(value, float) else ""
    )
    return "", f"{type(value).__name__} is not allowed in audit data{hint}"


def canonical_json(value: Any) -> str:
    return jsoncodec.canonical(value)


@functools.lru_cache(maxsize=64)  # a batch's records share one time: convert it once
def at_text(at: datetime) -> str:
    """ISO 8601 in UTC with microseconds: PostgreSQL keeps microseconds, so this round-trips."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def record_hash(
    seq: int, kind: str, subject: str, at: datetime, data_json: str, prev_hash: str
) -> str:
    """SHA-256 (hex) of the canonical encoding: the same bytes as `canonical_json` of the
    record's six fields, spelled out so that `data` is not encoded twice."""
    q = canonical_json
    text = (
        f'{{"at":"{at_text(at)}","data":{data_json},"kind":{q(kind)},'
        f'"prev_hash":"{prev_hash}","seq":{seq},"subject":{q(subject)}}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_READ_HEAD = "SELECT seq, hash FROM audit_head"

# Locks the head, chains the batch's hashes from it in SQL (a recursive CTE: record i's bytes
# are prefix[i] || hex(hash of record i - 1) || '","seq":' || seq || suffix[i], the bytes of
# `record_hash`), inserts the records and moves the head: one round trip. The prefixes and
# suffixes come as one bytea with int4 offsets: picking element i of a text[] walks the array
# from its start, a bytea slice does not. After waiting for the lock, FOR UPDATE returns the
# head as its previous holder committed it (READ COMMITTED); the UPDATE, whose snapshot may
# predate that commit, follows the row to that version and rechecks its condition there, so
# it must not compare with the seq of its snapshot.
_APPEND_CTES = """
audit_locked AS (SELECT seq, hash FROM audit_head FOR UPDATE),
audit_chain AS (
    SELECT 1 AS i, h.seq + 1 AS seq, h.hash AS prev,
           sha256(substring($1::bytea FROM ($2::int4[])[1] FOR ($3::int4[])[1])
                  || convert_to(encode(h.hash, 'hex') || '","seq":' || (h.seq + 1)::text, 'UTF8')
                  || substring($1 FROM ($2::int4[])[1] + ($3::int4[])[1] FOR ($4::int4[])[1]))
           AS hash
      FROM audit_locked h
    UNION ALL
    SELECT c.i + 1, c.seq + 1, c.hash,
           sha256(substring($1 FROM ($2::int4[])[c.i + 1] FOR ($3::int4[])[c.i + 1])
                  || convert_to(encode(c.hash, 'hex') || '","seq":' || (c.seq + 1)::text, 'UTF8')
                  || substring($1 FROM ($2::int4[])[c.i + 1] + ($3::int4[])[c.i + 1]
                               FOR ($4::int4[])[c.i + 1]))
      FROM audit_chain c
     WHERE c.i < cardinality($2::int4[])
),
audit_inserted AS (
    INSERT INTO audit_journal (seq, prev_hash, hash, kind, subject, at, data)
    SELECT c.seq, c.prev, c.hash, e.k, e.sub, e.a, e.d::jsonb
      FROM audit_chain c
      JOIN unnest($5::text[], $6::text[], $7::timestamptz[], $8::text[])
           WITH ORDINALITY AS e(k, sub, a, d, i) ON e.i = c.i
),
audit_moved AS (
    UPDATE audit_head a SET seq = l.seq, hash = l.hash
      FROM (SELECT seq, hash FROM audit_chain ORDER BY i DESC LIMIT 1) AS l
     WHERE a.id AND a.seq < l.seq
    RETURNING a.seq, a.hash
)
"""
APPEND_SELECT = "SELECT seq, hash FROM audit_moved"


async def head(conn: asyncpg.Connection) -> ChainHead:
    """The chain head as committed (or as this transaction sees it), without locking."""
    row = await conn.fetchrow(_READ_HEAD)
    return ChainHead(row["seq"], row["hash"].hex())


def append_ctes(events: Sequence[AuditEvent]) -> Ctes:
    """The CTEs that journal `events` in order (see `append`), to be run in the caller's
    transaction on their own or as the last part of a larger statement (`clearing_sql.
    statement`) whose select reads `APPEND_SELECT`'s row and passes it to `moved_head`."""
    if not 1 <= len(events) <= EVENTS_PER_APPEND_MAX:
        raise AuditError(f"{len(events)} events in one append; 1 to {EVENTS_PER_APPEND_MAX}")
    q = canonical_json
    blob = bytearray()
    starts: list[int] = []
    prefix_lens: list[int] = []
    suffix_lens: list[int] = []
    for e in events:
        prefix = f'{{"at":"{at_text(e.at)}","data":{e.data_json},"kind":{q(e.kind)},"prev_hash":"'
        suffix = f',"subject":{q(e.subject)}}}'
        starts.append(len(blob) + 1)  # SQL substring counts from 1
        pb, sb = prefix.encode(), suffix.encode()
        prefix_lens.append(len(pb))
        suffix_lens.append(len(sb))
        blob += pb
        blob += sb
    return Ctes(
        _APPEND_CTES,
        (
            bytes(blob),
            starts,
            prefix_lens,
            suffix_lens,
            [e.kind for e in events],
            [e.subject for e in events],
            [e.at for e in events],
            [e.data_json for e in events],
        ),
    )


def moved_head(row: Any) -> ChainHead:
    """The new head from the row of `APPEND_SELECT`; no row is a broken invariant (the head
    row is locked by the statement that moved it)."""
    if row is None or row[0] is None:
        raise AuditError("audit head did not move under its lock")
    return ChainHead(row[0], row[1].hex())


async def append(conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> ChainHead:
    """Journal `events` in order inside the caller's open transaction; return the new head.

    Takes the head row lock until the caller's commit (see the module docstring). One round
    trip whatever the batch size. An empty batch takes no lock and returns the head."""
    if len(events) > EVENTS_PER_APPEND_MAX:
        raise AuditError(f"{len(events)} events in one append; at most {EVENTS_PER_APPEND_MAX}")
    if not events:
        return await head(conn)
    if not conn.is_in_transaction():
        raise AuditError("append must run inside the caller's transaction")
    sql, args = statement([append_ctes(events)], APPEND_SELECT)
    return moved_head(await conn.fetchrow(sql, *args))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    head_hash: str  # hash of the last record read (genesis when none)
    problems: list[str]


class ChainChecker:
    """Checks journal rows fed in seq order against the chain rules and the head row, in
    constant memory. Pure: `verify` feeds it from a cursor, tests feed it directly."""

    def __init__(self, head_row: ChainHead, anchors: Iterable[ChainHead] = ()) -> None:
        self.head_row = head_row
        self.anchors = {a.seq: a.hash for a in anchors}
        self.records = 0
        self.last_seq = 0
        self.last_hash = GENESIS_HASH
        self.problems: list[str] = []
        self.problem_count = 0

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_MAX:
            self.problems.append(text)

    def feed(
        self,
        seq: int,
        prev_hash: str,
        digest: str,
        kind: str,
        subject: str,
        at: datetime,
        data: Any,
    ) -> None:
        self.records += 1
        expected = self.last_seq + 1
        if seq < expected:
            self._problem(f"seq {seq}: out of order after seq {self.last_seq}")
        elif seq > expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            self._problem(f"seq {missing}: missing (deleted records)")
        elif prev_hash != self.last_hash:
            self._problem(
                f"seq {seq}: prev_hash {prev_hash[:16]} is not the hash of seq {self.last_seq}"
                f" ({self.last_hash[:16]}): chain broken (record inserted, removed or rewritten)"
            )
        if record_hash(seq, kind, subject, at, canonical_json(data), prev_hash) != digest:
            self._problem(f"seq {seq}: hash does not match the record's content (edited)")
        if seq == self.head_row.seq and digest != self.head_row.hash:
            self._problem(f"seq {seq}: hash {digest[:16]} differs from the head row's")
        anchored = self.anchors.pop(seq, None)
        if anchored is not None and anchored != digest:
            self._problem(f"seq {seq}: hash {digest[:16]} differs from anchor {anchored[:16]}")
        self.last_seq, self.last_hash = max(seq, self.last_seq), digest

    def finish(self) -> VerifyResult:
        h = self.head_row
        if self.last_seq < h.seq:
            self._problem(
                f"journal ends at seq {self.last_seq} but the head row is at seq {h.seq}:"
                f" tail truncated"
            )
        elif self.last_seq > h.seq:
            self._problem(
                f"seq {h.seq + 1}..{self.last_seq}: beyond the head row (not appended by append)"
            )
        elif h.seq == 0 and h.hash != GENESIS_HASH:
            self._problem("head row names a hash but the journal is empty")
        for seq in sorted(self.anchors):
            self._problem(f"anchor seq {seq}: no such record in the journal")
        self.anchors.clear()
        if self.problem_count > len(self.problems):
            self.problems.append(f"... and {self.problem_count - len(self.problems)} more problems")
        return VerifyResult(
            self.problem_count == 0, self.records, self.last_hash, list(self.problems)
        )


_SCAN = "SELECT seq, prev_hash, hash, kind, subject, at, data::text FROM audit_journal ORDER BY seq"


async def verify(
    conn: asyncpg.Connection, *, batch_rows: int = 10_000, anchors: Iterable[ChainHead] = ()
) -> VerifyResult:
    """Walk the whole journal in seq order and report every break of the chain.

    Detects edited records (hash mismatch), deleted ones (seq gap, or a truncated tail against
    the head row), inserted ones (the next record's prev_hash no longer matches), and records
    that differ from previously published heads (`anchors`). Reads through a cursor,
    `batch_rows` at a time, in one REPEATABLE READ snapshot so that concurrent appends neither
    show up half nor look like tampering."""
    if not 1 <= batch_rows <= VERIFY_BATCH_ROWS_MAX:
        raise AuditError(f"batch_rows must be 1..{VERIFY_BATCH_ROWS_MAX}")
    if conn.is_in_transaction():
        level = await conn.fetchval("SHOW transaction_isolation")
        if level not in ("repeatable read", "serializable"):
            raise AuditError("verify needs its own transaction or a REPEATABLE READ one")
        tx = conn.transaction()
    else:
        tx = conn.transaction(isolation="repeatable_read", readonly=True)
    async with tx:
        checker = ChainChecker(await head(conn), anchors)
        async for r in conn.cursor(_SCAN, prefetch=batch_rows):
            checker.feed(r[0], r[1].hex(), r[2].hex(), r[3], r[4], r[5], json.loads(r[6]))
    return checker.finish()


async def verify_cli(dsn: str, *, anchors: Sequence[str] = (), out: TextIO | None = None) -> int:
    """`baygate audit verify`: one line per problem, then `OK <n> records, head <hash>`.
    Exit status 0 when the chain is intact, 1 when it is not, 2 when it could not be read.
    `anchors` are heads published earlier (`<seq>:<hash>`, as in settlement manifests)."""
    out = out or sys.stdout
    try:
        parsed = [ChainHead.parse(a) for a in anchors]
        conn = await asyncpg.connect(dsn, timeout=CLI_CONNECT_TIMEOUT_S)
    except (ValueError, OSError, asyncpg.PostgresError) as exc:
        print(f"ERROR {exc}", file=out)
        return 2
    try:
        result = await verify(conn, anchors=parsed)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"ERROR {exc}", file=out)
        return 2
    finally:
        await conn.close()
    for problem in result.problems:
        print(problem, file=out)
    if result.ok:
        print(f"OK {result.records} records, head {result.head_hash}", file=out)
        return 0
    print(f"FAILED {result.records} records read, chain broken", file=out)
    return 1
