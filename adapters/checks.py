"""Field checks shared by the pacs and IBPS decoders, collecting rejections instead of raising.

A decoder creates one `Problems` per transaction (or for the group header), passes it to the
checks below with the path of the field, and refuses the transaction when it is not empty.
Paths are built only when something is wrong, so the happy path stays cheap.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

from adapters import identifiers as ids
from adapters.base import DecodedTx
from clearing.model import Account, Agent, PartyId, Proxy
from clearing.money import Money, MoneyError
from clearing.reasons import Reason, Rejection

DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?$", re.ASCII
)
NBOFTXS_RE = re.compile(r"^\d{1,15}$", re.ASCII)
UUID4_RE = re.compile(
    r"^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}$", re.ASCII
)
RATE_RE = re.compile(r"^(?=[\d.]{1,12}$)\d{1,11}(?:\.\d{1,10})?$", re.ASCII)
DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)  # what an amount may look like
PROXY_ID_LENGTH_MAX = 2048
AMOUNT_TEXT_LENGTH_MAX = 40
NOT_PROVIDED = "NOTPROVIDED"  # account Id placeholder when only a proxy is known


class Problems:
    """Rejections of one transaction or group header, with paths below `base`."""

    __slots__ = ("base", "items")

    def __init__(self, base: str) -> None:
        self.base = base
        self.items: list[Rejection] = []

    def add(self, code: Reason, where: str, message: str) -> None:
        path = f"{self.base}/{where}" if self.base and where else (where or self.base)
        self.items.append(Rejection(code, message, path))

    def __bool__(self) -> bool:
        return bool(self.items)


def text_field(
    value: str | None, where: str, probs: Problems, *, length_max: int, required: bool = True
) -> str | None:
    """A stripped, non-empty text of at most length_max characters (FF01 otherwise)."""
    if value is None or not value.strip():
        if required:
            probs.add(Reason.FF01, where, f"{where.rpartition('/')[2]} is required")
        return None
    value = value.strip()
    if len(value) > length_max:
        probs.add(Reason.FF01, where, f"longer than {length_max} characters")
        return None
    return value


def iso_datetime(value: str | None, where: str, probs: Problems) -> datetime | None:
    """xs:dateTime in extended form, at most microseconds, offset optional (kept as sent)."""
    if value is None or not DATETIME_RE.fullmatch(value.strip()):
        probs.add(Reason.FF01, where, "must be an ISO 8601 date-time (YYYY-MM-DDThh:mm:ss[offset])")
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        probs.add(Reason.FF01, where, "is not a valid date-time")
        return None


def count(value: str | None, actual: int, where: str, probs: Problems) -> None:
    """NbOfTxs must be given and equal the number of transactions in the message."""
    if value is None or not NBOFTXS_RE.fullmatch(value.strip()):
        probs.add(Reason.FF01, where, "NbOfTxs is required (up to 15 digits)")
    elif int(value) != actual:
        probs.add(Reason.FF01, where, f"NbOfTxs is {int(value)} but the message holds {actual}")


def ctrl_sum(text: str, amounts: list[str | None], where: str, probs: Problems) -> None:
    """CtrlSum must equal the sum of the amounts as written (skipped if one is unreadable)."""
    declared = control_sum([text])
    total = control_sum(amounts)
    if declared is None:
        probs.add(Reason.FF01, where, "CtrlSum is not a decimal number")
    elif total is not None and declared != total:
        probs.add(Reason.FF01, where, f"CtrlSum is {declared} but the amounts add up to {total}")


def amount(
    value: str | None,
    currency: str | None,
    where: str,
    probs: Problems,
    currencies: frozenset[str] | None,
) -> Money | None:
    """A positive amount in one of `currencies` (None: any supported), exact in minor units."""
    if value is None or currency is None:
        probs.add(Reason.FF01, where, "amount and its Ccy attribute are required")
        return None
    if currencies is not None and currency not in currencies:
        allowed = ", ".join(sorted(currencies))
        probs.add(
            Reason.AM03, f"{where}/@Ccy", f"currency {currency[:8]!r} is not carried ({allowed})"
        )
        return None
    if not DECIMAL_RE.fullmatch(value.strip()):
        probs.add(Reason.AM12, where, "amount must be a decimal number in ASCII digits")
        return None
    try:
        return Money.parse(value, currency, allow_zero=False)
    except MoneyError as exc:
        probs.add(Reason(exc.code), where, exc.message)
        return None


def exchange_rate(value: str | None, where: str, probs: Problems) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not RATE_RE.fullmatch(value) or Decimal(value) == 0:
        probs.add(
            Reason.FF01, where, "exchange rate must be a positive decimal (11 digits, 10 decimals)"
        )
        return None
    return value


def uetr(value: str | None, where: str, probs: Problems) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not UUID4_RE.fullmatch(value):
        probs.add(Reason.FF01, where, "UETR must be a lowercase UUID version 4")
        return None
    return value


def party_id(
    type_code: str | None, value: str | None, where: str, probs: Problems
) -> PartyId | None:
    if not type_code or not value:
        probs.add(Reason.FF01, where, "identification needs both a scheme name and an id")
        return None
    type_code, value = type_code.strip(), value.strip()
    error = ids.party_id_error(type_code, value)
    if error is not None:
        probs.add(Reason.RR04, where, error)
        return None
    return PartyId(ids.PARTY_ID_TYPES[type_code], value)


def agent(
    system: str | None,
    member_id: str | None,
    name: str | None,
    where: str,
    probs: Problems,
    *,
    creditor: bool,
) -> Agent | None:
    """A provider by clearing system and member id; a bad creditor agent is RC10."""
    code = Reason.RC10 if creditor else Reason.FF01
    if not system or not member_id:
        probs.add(code, where, "clearing system and member id are required")
        return None
    system, member_id = system.strip(), member_id.strip()
    error = ids.member_id_error(system, member_id)
    if error is not None:
        probs.add(code, where, error)
        return None
    return Agent(system, member_id, name)


def account(
    number: str | None,
    proxy_type: str | None,
    proxy_value: str | None,
    holder: Agent | None,
    where: str,
    probs: Problems,
) -> Account | None:
    """An account number (checked by the holding agent's rules) and/or a proxy."""
    proxy = None
    if proxy_type is not None or proxy_value is not None:
        if not proxy_type or not proxy_value:
            probs.add(Reason.BE23, f"{where}/Prxy", "proxy needs both a type and an id")
            return None
        proxy_type, proxy_value = proxy_type.strip(), proxy_value.strip()
        error = ids.proxy_error(proxy_type, proxy_value[:PROXY_ID_LENGTH_MAX])
        if error is not None or len(proxy_value) > PROXY_ID_LENGTH_MAX:
            probs.add(Reason.BE23, f"{where}/Prxy", error or "proxy id is too long")
            return None
        proxy = Proxy(ids.PROXY_TYPES[proxy_type], proxy_value)
    if number is not None:
        number = number.strip()
        if number == NOT_PROVIDED and proxy is not None:
            number = None
        else:
            error = ids.account_error(holder.clearing_system if holder else None, number)
            if error is not None:
                probs.add(Reason.AC01, where, error)
                return None
    if number is None and proxy is None:
        probs.add(Reason.AC01, where, "an account number or a proxy is required")
        return None
    return Account(number, proxy)


def control_sum(amounts: list[str | None]) -> Decimal | None:
    """Sum of the amount texts as written (None when one is not a number: reported elsewhere)."""
    total = Decimal(0)
    for text in amounts:
        if (
            text is None
            or len(text) > AMOUNT_TEXT_LENGTH_MAX
            or not DECIMAL_RE.fullmatch(text.strip())
        ):
            return None
        try:
            total += Decimal(text.strip())
        except InvalidOperation:
            return None
    return total if total.is_finite() else None


def duplicate_ids(e2e_ids: list[str | None]) -> set[str]:
    seen: set[str] = set()
    dups: set[str] = set()
    for i in e2e_ids:
        if i is not None:
            if i in seen:
                dups.add(i)
            seen.add(i)
    return dups


def refuse_duplicates(txs: list[DecodedTx], path_format: str) -> list[DecodedTx]:
    """Refuse every transaction whose EndToEndId appears twice in one message (AM05).

    All of them, not only the later ones: answering ACCP and RJCT for the same EndToEndId
    would leave the sender unable to tell which one was taken.
    """
    dups = duplicate_ids([t.end_to_end_id for t in txs])
    if not dups:
        return txs
    out = []
    for t in txs:
        if t.end_to_end_id in dups:
            why = Rejection(
                Reason.AM05,
                f"EndToEndId {t.end_to_end_id!r} appears more than once in the message",
                path_format.format(n=t.index + 1),
            )
            t = DecodedTx(t.index, t.end_to_end_id, t.tx_id, None, (*t.errors, why))
        out.append(t)
    return out
