"""The CNAPS2 wire envelope: a fixed-width {H:...} header line, an optional {S:...} signature
line, then the XML document.

Header layout (modelled on public CNAPS2 samples; Baygate widens MesgID and MesgRefID to 35 so
they hold a full ISO 20022 MsgId). Widths in characters, values left-aligned, space-padded:

    VersionID 2 | OrigSender 14 | OrigSenderSID 4 | OrigReceiver 14 | OrigReceiverSID 4 |
    OrigSendDate 8 (YYYYMMDD) | OrigSendTime 6 (hhmmss) | StructType 3 (XML) |
    MesgType 20 | MesgID 35 | MesgRefID 35 | MesgPriority 1 | MesgDirection 1 (U/D) |
    Reserved 9

The signature line carries base64 of a DER signature over the XML document bytes exactly as
transmitted after it. Checking it needs the participant's key, so it is the gateway's job;
this module only splits it off and checks that it is base64.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, fields
from datetime import datetime

from adapters.base import AdapterError
from clearing.reasons import Reason, Rejection

VERSION = "02"
SIGNATURE_LENGTH_MAX = 8192  # base64 characters
_WIDTHS = {
    "version": 2,
    "sender": 14,
    "sender_system": 4,
    "receiver": 14,
    "receiver_system": 4,
    "send_date": 8,
    "send_time": 6,
    "struct_type": 3,
    "msg_type": 20,
    "msg_id": 35,
    "ref_id": 35,
    "priority": 1,
    "direction": 1,
    "reserved": 9,
}
HEADER_LENGTH = 3 + sum(_WIDTHS.values()) + 1  # "{H:" ... "}"
_FIELD_RE = re.compile(r"^[\x21-\x7e]*$", re.ASCII)  # printable ASCII, no spaces inside a value
_B64_RE = re.compile(rb"^[A-Za-z0-9+/]+={0,2}$")


@dataclass(frozen=True)
class Header:
    sender: str
    receiver: str
    send_date: str
    send_time: str
    msg_type: str
    msg_id: str
    ref_id: str
    sender_system: str = "IBPS"
    receiver_system: str = "IBPS"
    struct_type: str = "XML"
    priority: str = "2"
    direction: str = "U"
    version: str = VERSION
    reserved: str = ""

    def format(self) -> str:
        """The header line; raises AdapterError if a value does not fit its column."""
        out = ["{H:"]
        for name, width in _WIDTHS.items():
            value = getattr(self, name)
            if len(value) > width or not _FIELD_RE.fullmatch(value):
                raise AdapterError(
                    Rejection(
                        Reason.FF01,
                        f"{value[:40]!r} does not fit {width} characters",
                        f"{{H:}}/{name}",
                    )
                )
            out.append(value.ljust(width))
        out.append("}")
        return "".join(out)


@dataclass(frozen=True)
class Envelope:
    header: Header
    signature: bytes | None
    body: bytes


def _refuse(message: str, where: str = "{H:}") -> AdapterError:
    return AdapterError(Rejection(Reason.FF01, message, where))


_HEADER_RE = re.compile(
    r"\{H:"
    + "".join(f"(?P<{name}>[\x20-\x7e]{{{width}}})" for name, width in _WIDTHS.items())
    + r"\}",
    re.ASCII,
)
_HEADER_FIELDS = frozenset(f.name for f in fields(Header))


def parse_header(line: bytes) -> Header:
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise _refuse("header must be ASCII") from None
    m = _HEADER_RE.fullmatch(text)
    if m is None:
        raise _refuse(f"header must be {{H:...}} of exactly {HEADER_LENGTH} printable characters")
    values = {name: raw.rstrip(" ") for name, raw in m.groupdict().items()}
    for name, value in values.items():
        if " " in value:
            raise _refuse(f"{name} must be left-aligned without inner spaces", f"{{H:}}/{name}")
    if values["version"] != VERSION:
        raise _refuse(f"header version must be {VERSION}", "{H:}/version")
    if values["struct_type"] != "XML":
        raise _refuse("StructType must be XML", "{H:}/struct_type")
    if not (values["send_date"].isdigit() and values["send_time"].isdigit()):
        raise _refuse("send date and time must be digits", "{H:}/send_date")
    return Header(**{k: v for k, v in values.items() if k in _HEADER_FIELDS})


def split(data: bytes, size_bytes_max: int) -> Envelope:
    """Header, optional signature and document; raises AdapterError (FF01) if malformed."""
    if not isinstance(data, bytes):
        raise _refuse("message must be bytes", "")
    if len(data) > size_bytes_max:
        raise _refuse(f"message is larger than {size_bytes_max} bytes", "")
    if not data.startswith(b"{H:"):
        raise _refuse("message must start with the {H:...} header line")
    line, sep, rest = data.partition(b"\n")
    if not sep:
        raise _refuse("header line must be followed by a line break and the document")
    header = parse_header(line.rstrip(b"\r"))
    signature = None
    if rest.startswith(b"{S:"):
        sline, sep, rest = rest.partition(b"\n")
        sline = sline.rstrip(b"\r")
        b64 = sline[3:-1]
        if (
            not sep
            or not sline.endswith(b"}")
            or len(b64) > SIGNATURE_LENGTH_MAX
            or not _B64_RE.fullmatch(b64)
        ):
            raise _refuse("signature block must be {S:<base64>} on its own line", "{S:}")
        try:
            signature = binascii.a2b_base64(b64, strict_mode=True)
        except binascii.Error:
            raise _refuse("signature block is not valid base64", "{S:}") from None
    return Envelope(header, signature, rest)


def date_field(value: datetime) -> str:
    """OrigSendDate: the creation date as written in CreDtTm (local to the sender, no conversion)."""
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def time_field(value: datetime) -> str:
    return f"{value.hour:02d}{value.minute:02d}{value.second:02d}"


def wrap(header: Header, body: bytes, signature: bytes | None = None) -> bytes:
    parts = [header.format().encode("ascii"), b"\r\n"]
    if signature is not None:
        parts += [b"{S:", binascii.b2a_base64(signature, newline=False), b"}\r\n"]
    parts.append(body)
    return b"".join(parts)
