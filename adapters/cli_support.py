"""What `baygate validate` and `baygate translate` do, as plain functions (the CLI wires them).

Output contract: success is exit 0 (`OK <n> transactions` for validate, the message for
translate); problems are exit 1 with one line per problem,
`<REASON_CODE> <transaction or field path>: <message>`. An unknown scheme is a usage error:
exit 2 with one line.
"""

from __future__ import annotations

from adapters import xmlsafe
from adapters.base import AdapterError, TranslationError
from adapters.registry import SCHEME_IDS, get_adapter
from adapters.translate import translate

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _unknown_schemes(*schemes: str) -> list[str]:
    known = ", ".join(SCHEME_IDS)
    return [
        f"FF01 scheme: unknown scheme {s[:40]!r} (known: {known})"
        for s in schemes
        if s not in SCHEME_IDS
    ]


def validate_file(scheme: str, data: bytes) -> tuple[int, list[str]]:
    """Decode `data` as `scheme` and list every problem, or count the transactions."""
    unknown = _unknown_schemes(scheme)
    if unknown:
        return EXIT_USAGE, unknown
    message = get_adapter(scheme).decode_transfers(data)
    problems = message.rejections
    if problems:
        return EXIT_PROBLEMS, [r.line() for r in problems]
    n = len(message.txs)
    return EXIT_OK, [f"OK {n} transactions"]


def translate_file(src: str, dst: str, data: bytes) -> tuple[int, bytes, list[str]]:
    """The message(s) in scheme `dst` (indented for reading), or the reasons it cannot be."""
    unknown = _unknown_schemes(src, dst)
    if unknown:
        return EXIT_USAGE, b"", unknown
    try:
        out = translate(src, dst, data)
    except TranslationError as exc:
        return EXIT_PROBLEMS, b"", [r.line() for r in exc.rejections]
    except AdapterError as exc:
        return EXIT_PROBLEMS, b"", [exc.rejection.line()]
    return EXIT_OK, _readable(out), []


def _readable(message: bytes) -> bytes:
    """Indent the XML part; an IBPS envelope's header and signature lines stay as they are."""
    start = message.find(b"<?xml")
    if start < 0:
        return message
    return message[:start] + xmlsafe.pretty(message[start:])
