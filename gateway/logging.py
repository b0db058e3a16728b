"""structlog set-up: JSON lines in production, a readable console in a terminal.

Request id, participant and transfer id are bound through contextvars
(`structlog.contextvars.bind_contextvars`). A redaction processor masks person data
(names, account numbers, ID numbers, mobiles, e-mails), keeping the last 4 characters,
both under known keys and inside free text that looks like a mobile or an ID number.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE_KEYS = frozenset(
    {
        "name", "debtor_name", "creditor_name", "account", "account_number", "debtor_account",
        "creditor_account", "id_number", "identity", "debtor_id", "mobile", "proxy", "proxy_value",
        "email", "e_mail", "phone",
    }
)
_KEEP_CHARS = 4
# Mobiles in ISO form or bare, e-mails, HKID-like and 18-character Mainland IDs.
_TEXT_PATTERNS = (
    re.compile(r"\+\d{2,3}-?\d{6,11}"),
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    re.compile(r"\b\d{17}[\dXx]\b"),
    re.compile(r"\b[A-Z]{1,2}\d{6}\(?[\dA]\)?"),
)


def mask(value: object) -> str:
    s = str(value)
    if len(s) <= _KEEP_CHARS:
        return "*" * len(s)
    return "*" * (len(s) - _KEEP_CHARS) + s[-_KEEP_CHARS:]


def _mask_text(text: str) -> str:
    for pat in _TEXT_PATTERNS:
        text = pat.sub(lambda m: mask(m.group(0)), text)
    return text


def _redact(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (mask(v) if k in SENSITIVE_KEYS and v is not None else _redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_redact(v) for v in obj]
    if isinstance(obj, str):
        return _mask_text(obj)
    return obj


def redact_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if value is None:
            continue
        if key in SENSITIVE_KEYS:
            event_dict[key] = mask(value)
        else:
            event_dict[key] = _redact(value)
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "baygate") -> Any:
    return structlog.get_logger(name)
