"""Hardened XML reading and careful XML writing, shared by every codec.

Reading: inbound messages come from outside, so the parser resolves no entity, loads no DTD,
touches no network and keeps libxml2's default size guards (no huge_tree). Any DOCTYPE is
refused before parsing, so an external entity or an entity-expansion bomb costs one byte scan
and is never echoed back. Size and element depth are bounded by `XmlLimits`.

Writing: codecs build documents as strings (several times faster than a tree for one-page
messages); `text` escapes values and refuses characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from clearing.reasons import Reason, Rejection


@dataclass(frozen=True)
class XmlLimits:
    size_bytes_max: int = 8 * 1024 * 1024
    depth_max: int = 16  # pacs.008 needs 9 levels, ibps.101 needs 7


DEFAULT_LIMITS = XmlLimits()


class XmlRejected(Exception):
    """The bytes are not a document Baygate will read; `rejection` says why (always FF01)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.rejection = Rejection(Reason.FF01, message, path)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
        recover=False,
    )


_PARSER = _parser()
_DEPTH_XPATH: dict[int, etree.XPath] = {}


def _too_deep(root: etree._Element, depth_max: int) -> bool:
    """True when an element sits deeper than depth_max (root is depth 1); the walk is in C."""
    xp = _DEPTH_XPATH.get(depth_max)
    if xp is None:
        xp = _DEPTH_XPATH[depth_max] = etree.XPath("boolean(/*" + "/*" * depth_max + ")")
    return bool(xp(root))


_ENCODING_RE = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def parse(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted bytes into a root element or raise XmlRejected (reason FF01)."""
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise XmlRejected("message must be bytes")
        data = bytes(data)
    if len(data) > limits.size_bytes_max:
        raise XmlRejected(f"message is larger than {limits.size_bytes_max} bytes")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlRejected("DOCTYPE and entity declarations are refused")
    # UTF-8 XML never holds a NUL byte; UTF-16 and UTF-32 always do, and libxml2 would
    # otherwise detect and read them even without an encoding declaration.
    if b"\x00" in data:
        raise XmlRejected("message must be encoded in UTF-8 (it holds NUL bytes)")
    declared = _ENCODING_RE.match(data[:200])
    if declared and declared.group(1).upper().replace(b"_", b"-") not in (b"UTF-8", b"UTF8"):
        raise XmlRejected("message must be encoded in UTF-8")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlRejected(_syntax_message(data, exc)) from None
    if _too_deep(root, limits.depth_max):
        raise XmlRejected(f"message nests elements deeper than {limits.depth_max} levels")
    return root


def _syntax_message(data: bytes, exc: etree.XMLSyntaxError) -> str:
    """Say where, never what: libxml2's own text may quote the offending input."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"message is not valid UTF-8 (byte {bad.start})"
    if not data.strip():
        return "message is empty"
    line, column = exc.position if exc.position else (0, 0)
    return f"message is not well-formed XML (line {line}, column {column})"


# Characters XML 1.0 cannot carry at all (C0 controls other than tab/LF/CR, surrogates, FFFE/FFFF).
_XML_BAD = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def scrub(value: str) -> str:
    """Replace characters XML cannot carry with U+FFFD (for free text Baygate itself writes)."""
    return _XML_BAD.sub("\ufffd", value)


def xml_safe(value: str) -> bool:
    return _XML_BAD.search(value) is None


_SPECIAL = re.compile("[&<>\r]")


def text(value: str) -> str:
    """Escape a value for element content. CR is written as a reference so it survives parsing."""
    if _SPECIAL.search(value) is None:
        return value
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def local(tag: object) -> str:
    """The local name of a tag, for messages and paths."""
    if not isinstance(tag, str):
        return "?"
    return tag.rpartition("}")[2]


class Writer:
    """Builds a compact UTF-8 document from escaped pieces; callers escape with `text`.

    No indentation: whitespace is bytes on the wire and nodes for every parser downstream.
    `pretty` re-indents a document for people (the CLI does).
    """

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']

    def open(self, name: str, attrs: str = "") -> None:
        self.parts.append(f"<{name}{attrs}>")

    def close(self, name: str) -> None:
        self.parts.append(f"</{name}>")

    def leaf(self, name: str, value: str, attrs: str = "") -> None:
        self.parts.append(f"<{name}{attrs}>{value}</{name}>")

    def mark(self) -> int:
        return len(self.parts)

    def bytes(self) -> bytes:
        return "".join(self.parts).encode("utf-8")


def pretty(document: bytes) -> bytes:
    """Indented copy of a document Baygate wrote (trusted input: our own encoder's output)."""
    root = etree.fromstring(document, _PARSER)
    etree.indent(root, space="  ")
    body = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"
