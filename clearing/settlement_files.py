"""Settlement files of a closed window, as pure text generators: data in, rows and bytes out.

Theory of operation. At window close the clearing engine hands over, per currency, each
participant's gross debits, gross credits and net (credits minus debits, summing to zero per
currency) and the currency's settlement system. From that alone come the small files:
a summary CSV per currency (with a control-total row) and a pacs.009.001.08 per currency
instructing the settlement system to move each net amount between the participant and
Baygate's settlement account. The large files, a transfer detail CSV per participant and a
camt.053.001.08 statement per participant and currency, are fed with the window's committed
transfer legs in batches (`WindowStream.feed`): each leg is formatted once for both its sides,
and generation holds one batch and a short tail per file, never the window.

The statement summary (camt.053 TxsSummry) precedes its entries, so the declared totals must
include entry counts; the streamed rows are summed again and compared with the declared
totals (`WindowStream.mismatches`): the same fact checked on two paths.

The entry and CSV text is produced by string templates rather than an element tree: a window
of a million transfers is two million entries, and building and serializing one entry with
lxml took about 15 us here against well under 1 us for its template. Free text takes the
plain path only when a scan finds nothing to escape, quote or leave out; otherwise `_xml`
(escaping, XML 1.0 character filter, length limit) and `_cell` (CSV formula guard) apply.
The output is validated against the official XSDs in the tests.

Person data (debtor and creditor names and accounts) is masked per `Masking`, keeping the
last characters. Amounts are written as `Money.format()` writes them (in the hot loop by a
divmod of the minor units, never a Decimal). Legs arrive in plain types (`TransferRow`), their
times already ISO 8601 text, because building a datetime and a Money per leg cost more than
everything else the database source does. The database source goes further and hands over
lines it formatted itself (`FormattedLines`: masked, amounts written, the plain path's text),
leaving the routing and the careful path to `feed`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cached_property
from typing import NamedTuple, cast

from lxml import etree

from clearing.money import AMOUNT_MINOR_MAX, Money, exponent

CAMT053_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
PACS009_NS = "urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08"
# All three Greater Bay Area jurisdictions keep UTC+8: the default settlement date is taken there.
GBA_TZ = timezone(timedelta(hours=8), "UTC+08:00")
PARTICIPANTS_MAX = 10_000
PENDING_ITEMS_MAX = 131_072  # shared among a WindowStream's files to set `chunk_items`
# A detail line is about a quarter of a statement entry: detail files wait for 4 times as many
# before a write (a quarter of the writes, for some 10 MB more at 1,000 participants).
DETAIL_CHUNK_FACTOR = 4
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # window and participant ids: file-safe
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# Characters needing work in XML text: markup, and code points XML 1.0 forbids.
_XML_SPECIAL = re.compile('[&<>"\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

SUMMARY_HEADER = (
    "record", "currency", "settlement_system", "participant_id", "participant_name",
    "clearing_system", "clearing_code", "gross_debits", "gross_credits", "net",
    "instruction", "instruction_amount", "debit_count", "credit_count",
)  # fmt: skip
DETAIL_HEADER = (
    "transfer_id", "end_to_end_id", "created_at", "committed_at", "direction", "payer", "payee",
    "amount", "currency", "source_scheme", "destination_scheme",
    "debtor_name", "debtor_account", "creditor_name", "creditor_account",
)  # fmt: skip


class SettlementInputError(ValueError):
    """The clearing output handed over breaks an invariant (unbalanced net, unknown participant,
    streamed rows disagreeing with declared totals): no file may be published from it."""


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    clearing_system: str
    clearing_code: str


@dataclass(frozen=True, slots=True)
class SettlementSystem:
    """Where a currency settles (HKD: HK CHATS, CNY: CNAPS HVPS, MOP: Macau RTGS).
    `account` is Baygate's settlement account there, the counterparty of every instruction."""

    currency: str
    code: str
    name: str
    account: str = "BAYGATE"


@dataclass(frozen=True, slots=True)
class PositionTotal:
    """One participant's totals in one currency for the window, as the clearing engine closed it."""

    participant_id: str
    gross_debits: Money
    gross_credits: Money
    net: Money  # gross_credits - gross_debits: positive receives, negative pays
    debit_count: int
    credit_count: int

    @property
    def currency(self) -> str:
        return self.net.currency

    @property
    def instruction(self) -> str:
        return "receive" if self.net.minor > 0 else "pay" if self.net.minor < 0 else "none"


@dataclass(frozen=True)
class Window:
    """What the clearing engine hands over at close. Not slotted: lookups are cached on it."""

    window_id: str
    opened_at: datetime
    closed_at: datetime
    participants: tuple[Participant, ...]
    totals: tuple[PositionTotal, ...]
    systems: tuple[SettlementSystem, ...]
    settlement_date: date | None = None  # default: the close date in UTC+8
    gateway_name: str = "Baygate"

    @property
    def value_date(self) -> date:
        return self.settlement_date or self.closed_at.astimezone(GBA_TZ).date()

    @property
    def currencies(self) -> list[str]:
        return sorted({s.currency for s in self.systems})

    def totals_for(self, currency: str) -> list[PositionTotal]:
        return sorted((t for t in self.totals if t.currency == currency), key=_by_participant)

    @cached_property
    def _participants(self) -> dict[str, Participant]:
        return {p.id: p for p in self.participants}

    def participant(self, participant_id: str) -> Participant:
        try:
            return self._participants[participant_id]
        except KeyError:
            raise SettlementInputError(f"unknown participant {participant_id!r}") from None

    def system(self, currency: str) -> SettlementSystem:
        for s in self.systems:
            if s.currency == currency:
                return s
        raise SettlementInputError(f"no settlement system for {currency}")


def _by_participant(t: PositionTotal) -> str:
    return t.participant_id


class TransferRow(NamedTuple):
    """One committed transfer leg in one currency, in the plain types a database stream yields:
    millions pass through an export, so no Money or datetime is built per leg. Times are
    ISO 8601 date-times with an offset (`booking_time`); the amount is in minor units."""

    transfer_id: str
    end_to_end_id: str
    created_at: str
    committed_at: str
    payer_id: str
    payee_id: str
    amount_minor: int
    currency: str
    source_scheme: str
    destination_scheme: str
    debtor_name: str
    debtor_account: str
    creditor_name: str
    creditor_account: str


# A TransferRow as a plain tuple, in the same field order: what a source may yield instead
# when building a NamedTuple per leg costs too much.
Leg = tuple[str, str, str, str, str, str, int, str, str, str, str, str, str, str]


def booking_time(dt: datetime) -> str:
    """A leg's time as TransferRow carries it: UTC, microseconds, explicit offset. The database
    source formats its timestamps the same way (see gateway.settlement_service)."""
    if dt.tzinfo is None:
        raise SettlementInputError("booking times must be timezone-aware")
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Masking:
    """Which person data the files mask; masked values keep their last `keep_chars` characters."""

    names: bool = True
    accounts: bool = True
    keep_chars: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.keep_chars <= 8:
            raise ValueError("keep_chars must be between 0 and 8")

    def name_fn(self) -> Callable[[str], str]:
        return self._masker() if self.names else _identity

    def account_fn(self) -> Callable[[str], str]:
        return self._masker() if self.accounts else _identity

    def _masker(self) -> Callable[[str], str]:
        keep = self.keep_chars

        def mask(s: str) -> str:
            n = len(s)
            if n <= keep:
                return "*" * n
            return "*" * (n - keep) + s[n - keep :] if keep else "*" * n

        return mask


def _identity(s: str) -> str:
    return s


def check_window(window: Window) -> None:
    """Refuse a clearing output that could not settle: raise SettlementInputError naming why."""
    if not ID_RE.match(window.window_id):
        raise SettlementInputError(f"window id {window.window_id!r} is not file-safe")
    for dt in (window.opened_at, window.closed_at):
        if dt.tzinfo is None:
            raise SettlementInputError("window times must be timezone-aware")
    if window.closed_at < window.opened_at:
        raise SettlementInputError("window closes before it opens")
    if len(window.participants) > PARTICIPANTS_MAX:
        raise SettlementInputError(f"more than {PARTICIPANTS_MAX} participants")
    ids = [p.id for p in window.participants]
    if len(set(ids)) != len(ids) or any(not ID_RE.match(i) for i in ids):
        raise SettlementInputError("participant ids must be unique and file-safe")
    currencies = [s.currency for s in window.systems]
    if len(set(currencies)) != len(currencies):
        raise SettlementInputError("one settlement system per currency")
    seen: set[tuple[str, str]] = set()
    for t in window.totals:
        key = (t.participant_id, t.currency)
        if key in seen:
            raise SettlementInputError(f"duplicate totals for {key}")
        seen.add(key)
        window.participant(t.participant_id)
        window.system(t.currency)
        if t.gross_credits - t.gross_debits != t.net:
            raise SettlementInputError(f"net of {key} is not credits minus debits")
        if min(t.gross_debits.minor, t.gross_credits.minor, t.debit_count, t.credit_count) < 0:
            raise SettlementInputError(f"negative gross total or count for {key}")
    for ccy in currencies:
        rows = window.totals_for(ccy)
        if sum(t.net.minor for t in rows) != 0:
            raise SettlementInputError(f"net positions in {ccy} do not sum to zero")


# ---------------------------------------------------------------- text helpers


def _xml(s: str, length_max: int) -> str:
    """Escape for XML text/attributes, drop characters XML 1.0 forbids, cut to the schema length."""
    if len(s) > length_max:
        s = s[:length_max]
    if _XML_SPECIAL.search(s) is None:
        return s
    s = _XML_FORBIDDEN.sub("", s)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _el(tag: str, s: str, length_max: int) -> str:
    """An optional text element, left out when nothing printable remains."""
    s = _xml(s, length_max)
    return f"<{tag}>{s}</{tag}>" if s else ""


def _cell(s: str) -> str:
    """A CSV text cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    return "'" + s if s.startswith(_FORMULA_START) else s


def ref35(s: str) -> str:
    """A reference fitting Max35Text: as is, or a UUID without hyphens; anything else is refused
    rather than cut, since a cut reference would point at another transfer."""
    if 0 < len(s) <= 35:
        return s
    if _UUID_RE.match(s):
        return s.replace("-", "")
    raise SettlementInputError(f"reference {s[:40]!r} does not fit 35 characters")


def msg_id(*parts: str) -> str:
    """A deterministic message id of at most 35 characters: readable when short, hashed when not."""
    s = "-".join(parts)
    if len(s) <= 35:
        return s
    return s[:22] + "-" + hashlib.sha256(s.encode()).hexdigest()[:12]


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------- summary CSV


def summary_csv(window: Window, currency: str) -> bytes:
    """Per-currency summary: one `position` row per participant, then one `control` row whose
    gross totals, net (zero) and counts are the sums of the rows above."""
    system = window.system(currency)
    rows: list[Sequence[object]] = [SUMMARY_HEADER]
    debits = credits = net = Money(0, currency)
    n_debit = n_credit = 0
    for t in window.totals_for(currency):
        p = window.participant(t.participant_id)
        rows.append(
            ("position", currency, system.code, p.id, _cell(p.name), p.clearing_system,
             p.clearing_code, t.gross_debits.format(), t.gross_credits.format(), t.net.format(),
             t.instruction, Money(abs(t.net.minor), currency).format(),
             t.debit_count, t.credit_count)
        )  # fmt: skip
        debits, credits, net = debits + t.gross_debits, credits + t.gross_credits, net + t.net
        n_debit, n_credit = n_debit + t.debit_count, n_credit + t.credit_count
    rows.append(
        ("control", currency, system.code, "", str(len(rows) - 1), "", "", debits.format(),
         credits.format(), net.format(), "", "", n_debit, n_credit)
    )  # fmt: skip
    return csv_text(rows).encode()


@dataclass(slots=True)
class SummaryCheck:
    """A summary CSV read back: its positions, and every control total that did not recompute."""

    currency: str = ""
    positions: dict[str, PositionTotal] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_summary_csv(data: bytes) -> SummaryCheck:
    """Parse a summary CSV and recompute its control totals; problems are data, never raised."""
    out = SummaryCheck()
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        out.problems.append(f"unreadable CSV: {exc}")
        return out
    if not rows or tuple(rows[0]) != SUMMARY_HEADER:
        out.problems.append("header differs from the summary format")
        return out
    control: list[str] | None = None
    sums = [0, 0, 0, 0, 0]
    for line_no, r in enumerate(rows[1:], start=2):
        if len(r) != len(SUMMARY_HEADER) or r[0] not in ("position", "control") or control:
            out.problems.append(f"line {line_no}: not a position row before the control row")
            continue
        out.currency = out.currency or r[1]
        if r[0] == "control":
            control = r
            continue
        try:
            t = _position_from_row(r)
            instruction_minor = Money.parse(r[11], t.currency).minor
        except (ValueError, ArithmeticError) as exc:
            out.problems.append(f"line {line_no}: {exc}")
            continue
        if t.gross_credits - t.gross_debits != t.net or r[10] != t.instruction:
            out.problems.append(f"line {line_no}: net or instruction inconsistent with gross")
        if instruction_minor != abs(t.net.minor):
            out.problems.append(f"line {line_no}: instruction amount is not the absolute net")
        out.positions[t.participant_id] = t
        for i, v in enumerate((t.gross_debits.minor, t.gross_credits.minor, t.net.minor,
                               t.debit_count, t.credit_count)):  # fmt: skip
            sums[i] += v
    if control is None:
        out.problems.append("control row missing")
        return out
    _check_control(out, control, sums)
    return out


def _position_from_row(r: list[str]) -> PositionTotal:
    ccy = r[1]
    return PositionTotal(
        participant_id=r[3],
        gross_debits=Money.parse(r[7], ccy),
        gross_credits=Money.parse(r[8], ccy),
        net=Money.parse(r[9], ccy, allow_negative=True),
        debit_count=int(r[12]),
        credit_count=int(r[13]),
    )


def _check_control(out: SummaryCheck, control: list[str], sums: list[int]) -> None:
    ccy = out.currency
    try:
        declared = [
            Money.parse(control[7], ccy).minor,
            Money.parse(control[8], ccy).minor,
            Money.parse(control[9], ccy, allow_negative=True).minor,
            int(control[12]),
            int(control[13]),
        ]
        count = int(control[4])
    except (ValueError, ArithmeticError) as exc:
        out.problems.append(f"control row unreadable: {exc}")
        return
    names = ("gross debits", "gross credits", "net", "debit count", "credit count")
    for name, want, got in zip(names, declared, sums, strict=True):
        if want != got:
            out.problems.append(f"control {name} {want} differs from the rows' sum {got}")
    if count != len(out.positions):
        out.problems.append(f"control participant count {count} != {len(out.positions)}")
    if sums[2] != 0 or sums[0] != sums[1]:
        out.problems.append(f"{ccy} positions do not balance: net sum {sums[2]}")


# ---------------------------------------------------------------- detail CSV and camt.053


def agents_xml(window: Window) -> dict[str, str]:
    """Each participant as a camt.053 agent (clearing system and member id), built once per
    window: every entry names its counterparty's agent."""
    return {
        p.id: f"<FinInstnId><ClrSysMmbId><ClrSysId><Prtry>{_xml(p.clearing_system, 35)}</Prtry>"
        f"</ClrSysId><MmbId>{_xml(p.clearing_code, 35)}</MmbId></ClrSysMmbId></FinInstnId>"
        for p in window.participants
    }


def _fi_xml(p: Participant) -> str:
    return (
        f"<FinInstnId><ClrSysMmbId><ClrSysId><Prtry>{_xml(p.clearing_system, 35)}</Prtry>"
        f"</ClrSysId><MmbId>{_xml(p.clearing_code, 35)}</MmbId></ClrSysMmbId>"
        f"{_el('Nm', p.name, 140)}</FinInstnId>"
    )


def _party_xml(tag: str, name: str, account: str) -> str:
    """Dbtr/Cdtr and their account, each left out when empty (the schema wants 1+ characters)."""
    name, account = _xml(name, 140), _xml(account, 34)
    out = f"<{tag}><Pty><Nm>{name}</Nm></Pty></{tag}>" if name else ""
    if account:
        out += f"<{tag}Acct><Id><Othr><Id>{account}</Id></Othr></Id></{tag}Acct>"
    return out


# A leg's text fields are joined, each led by "|", and searched for characters that need
# escaping, quoting or dropping, and for a field that is empty or starts like a spreadsheet
# formula. Most legs have neither and take the plain path; "|" inside a field can only cause a
# needless careful pass. ASCII text (the usual case once masked) is checked with `in` and
# `isprintable` (control characters and DEL), twice as fast as the patterns other text needs.
_CARE_CHARS = re.compile('[&<>",\r\n\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_CARE_STARTS = re.compile("\\|[=+@\t|-]")


def _plain(joined: str) -> bool:
    """True when no field of `joined` (see above) needs the careful path."""
    if joined.isascii():
        return joined.isprintable() and not (
            "&" in joined or "<" in joined or ">" in joined or '"' in joined or "," in joined
            or "|=" in joined or "|+" in joined or "|@" in joined or "|-" in joined
            or "||" in joined
        )  # fmt: skip
    return not (_CARE_CHARS.search(joined) or _CARE_STARTS.search(joined))


def detail_name(participant_id: str) -> str:
    return f"details/{participant_id}.csv"


def statement_name(participant_id: str, currency: str) -> str:
    return f"camt053/{participant_id}.{currency}.xml"


def statement_head(window: Window, total: PositionTotal, generated_at: datetime) -> str:
    """camt.053 up to its first entry: account, opening (zero) and closing balances, and the
    transaction summary, all from the declared totals."""
    t, ccy = total, total.currency
    p = window.participant(t.participant_id)
    net = t.net.minor
    closing = Money(abs(net), ccy).format()
    ind = "DBIT" if net < 0 else "CRDT"
    ident = _xml(msg_id(window.window_id, p.id, ccy), 35)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{CAMT053_NS}">'
        f"<BkToCstmrStmt>\n<GrpHdr><MsgId>{ident}</MsgId>"
        f"<CreDtTm>{iso(generated_at)}</CreDtTm></GrpHdr>\n"
        f"<Stmt><Id>{ident}</Id><CreDtTm>{iso(generated_at)}</CreDtTm>"
        f"<FrToDt><FrDtTm>{iso(window.opened_at)}</FrDtTm><ToDtTm>{iso(window.closed_at)}"
        f"</ToDtTm></FrToDt><Acct><Id><Othr><Id>{_xml(p.clearing_code + '-' + ccy, 34)}</Id>"
        f"</Othr></Id><Ccy>{ccy}</Ccy>{_el('Nm', p.name, 70)}<Svcr><FinInstnId>"
        f"<Nm>{_xml(window.gateway_name, 140)}</Nm></FinInstnId></Svcr></Acct>\n"
        f"{_balance('OPBD', Money(0, ccy).format(), ccy, 'CRDT', window.opened_at)}\n"
        f"{_balance('CLBD', closing, ccy, ind, window.closed_at)}\n"
        f"<TxsSummry><TtlNtries><NbOfNtries>{t.debit_count + t.credit_count}</NbOfNtries>"
        f"<Sum>{(t.gross_debits + t.gross_credits).format()}</Sum><TtlNetNtry>"
        f"<Amt>{closing}</Amt><CdtDbtInd>{ind}</CdtDbtInd></TtlNetNtry></TtlNtries>"
        f"<TtlCdtNtries><NbOfNtries>{t.credit_count}</NbOfNtries>"
        f"<Sum>{t.gross_credits.format()}</Sum></TtlCdtNtries>"
        f"<TtlDbtNtries><NbOfNtries>{t.debit_count}</NbOfNtries>"
        f"<Sum>{t.gross_debits.format()}</Sum></TtlDbtNtries></TxsSummry>\n"
    )


STATEMENT_TAIL = "</Stmt>\n</BkToCstmrStmt></Document>\n"


class WindowStream:
    """The detail CSVs and camt.053 statements of a set of participants, fed once with every
    transfer leg touching them, in batches.

    Each leg is formatted once and written to both sides (payer: debit, payee: credit) when
    both belong to the set. Text waits in a short list per file; `feed` names the files whose
    list reached `chunk_items` (detail CSVs: DETAIL_CHUNK_FACTOR times as many, their lines
    being about a quarter of an entry) and `take` hands their text over, so memory is bounded
    by files times `chunk_items`, never by the number of transfers. Unless given, `chunk_items` shares
    PENDING_ITEMS_MAX among the files (8 to 64 each): long lists mean fewer, larger writes.
    Running sums per participant and currency are compared with the declared totals by
    `mismatches` once all is fed."""

    def __init__(
        self,
        window: Window,
        participant_ids: Iterable[str],
        masking: Masking,
        generated_at: datetime,
        chunk_items: int | None = None,
    ) -> None:
        self.window, self.generated_at = window, generated_at
        self.members = frozenset(participant_ids)
        self._masking = masking
        self._currencies = set(window.currencies)
        self.totals = {
            (t.participant_id, t.currency): t
            for t in window.totals
            if t.participant_id in self.members and t.debit_count + t.credit_count
        }
        self._sums: dict[str, dict[str, list[int]]] = {c: {} for c in self._currencies}
        # Text waiting per file, reachable without building its name: details by participant,
        # statements by currency then participant; `_pending` maps file names to the same lists.
        self._csv_lists: dict[str, list[str]] = {}
        self._camt_lists: dict[str, dict[str, list[str]]] = {c: {} for c in self._currencies}
        self._pending: dict[str, list[str]] = {}
        self.entries = 0  # sides written: a leg inside the set counts twice
        for pid, ccy in sorted(self.totals):
            self._sums[ccy][pid] = [0, 0, 0, 0]  # debits, credits, debit count, credit count
            if pid not in self._csv_lists:
                self._csv_lists[pid] = self._pending[detail_name(pid)] = []
            self._camt_lists[ccy][pid] = self._pending[statement_name(pid, ccy)] = []
        # What one side of a leg touches, in one lookup: running sums, detail and statement.
        self._sides: dict[str, dict[str, tuple[list[int], list[str], list[str]]]] = {
            c: {p: (sums, self._csv_lists[p], self._camt_lists[c][p]) for p, sums in by.items()}
            for c, by in self._sums.items()
        }
        self.chunk_items = chunk_items or max(
            8, min(64, PENDING_ITEMS_MAX // max(1, len(self._pending)))
        )
        self._scales = {c: 10 ** exponent(c) for c in self._currencies}
        agents = agents_xml(window)
        self._debtor_agents = {p: f"<DbtrAgt>{a}</DbtrAgt>" for p, a in agents.items()}
        self._creditor_agents = {p: f"<CdtrAgt>{a}</CdtrAgt>" for p, a in agents.items()}

    def heads(self) -> dict[str, str]:
        """Every file of the set with its opening text, in a stable order."""
        header = csv_text([DETAIL_HEADER])
        out = {detail_name(pid): header for pid in sorted(self._csv_lists)}
        for (pid, ccy), t in sorted(self.totals.items()):
            out[statement_name(pid, ccy)] = statement_head(self.window, t, self.generated_at)
        return out

    def take(self, key: str) -> str:
        pending = self._pending[key]
        text = "".join(pending)
        pending.clear()
        return text

    def files(self) -> list[str]:
        return list(self._pending)

    def tail(self, key: str) -> str:
        """What is left to write in the file, closing tags included. Files' lists are
        separate, so different files' tails may be taken on different threads."""
        text = self.take(key)
        return text + STATEMENT_TAIL if key.startswith("camt053/") else text

    def tails(self) -> dict[str, str]:
        return {key: self.tail(key) for key in self._pending}

    def mismatches(self) -> list[str]:
        out = []
        names = ("gross debits", "gross credits", "debit count", "credit count")
        for (pid, ccy), t in sorted(self.totals.items()):
            declared = (t.gross_debits.minor, t.gross_credits.minor, t.debit_count, t.credit_count)
            for n, want, got in zip(names, declared, self._sums[ccy][pid], strict=True):
                if want != got:
                    out.append(f"{pid} {ccy} {n}: declared {want}, streamed {got}")
        return out

    def feed(self, rows: Iterable[Leg] | FormattedLines) -> list[str]:
        """Format a batch; return the files with a full chunk waiting (see `take`). Raises
        SettlementInputError on a leg outside the declared totals.

        The hot loop of an export (millions of legs): rows unpacked into locals, one f-string
        per output line, the statement owner's own agent left out of its entries."""
        if type(rows) is FormattedLines:
            return self._feed_lines(rows)
        members, chunk, ready = self.members, self.chunk_items, []
        detail_chunk = chunk * DETAIL_CHUNK_FACTOR
        debtor_agents, creditor_agents = self._debtor_agents, self._creditor_agents
        keep, names, accounts = (
            self._masking.keep_chars,
            self._masking.names,
            self._masking.accounts,
        )
        all_sides, scales = self._sides, self._scales
        entries = 0
        for r in rows:
            tid, e2e, created, committed, payer, payee, minor, ccy, src, dst, dn, da, cn, ca = r
            sides = all_sides.get(ccy)
            if (
                sides is None or type(minor) is not int or not 0 < minor <= AMOUNT_MINOR_MAX
                or payer == payee
            ):  # fmt: skip
                raise SettlementInputError(f"transfer {tid}: not a settled leg")
            payer_in, payee_in = payer in members, payee in members
            if not (payer_in or payee_in):
                raise SettlementInputError(f"transfer {tid} is not of this set")
            if payer not in debtor_agents or payee not in debtor_agents:
                raise SettlementInputError(f"transfer {tid}: unknown party")
            if scales[ccy] == 100:
                units, cents = divmod(minor, 100)
                amt = f"{units}.{cents:02d}"
            else:
                amt = Money(minor, ccy).format()
            if names:  # as Masking.name_fn, inline: four calls a leg cost more than the rest
                n = len(dn)
                dn = "*" * n if n <= keep else "*" * (n - keep) + dn[n - keep :]
                n = len(cn)
                cn = "*" * n if n <= keep else "*" * (n - keep) + cn[n - keep :]
            if accounts:
                n = len(da)
                da = "*" * n if n <= keep else "*" * (n - keep) + da[n - keep :]
                n = len(ca)
                ca = "*" * n if n <= keep else "*" * (n - keep) + ca[n - keep :]
            joined = f"|{tid}|{e2e}|{dn}|{da}|{cn}|{ca}|{src}|{dst}|{created}|{committed}"
            if (
                not _plain(joined) or len(tid) > 35 or len(e2e) > 35
                or len(da) > 34 or len(ca) > 34 or len(dn) > 140 or len(cn) > 140
            ):  # fmt: skip
                line_a, line_b, details = _careful_row(cast(Leg, r), amt, dn, da, cn, ca)
            else:
                line_a = f"{tid},{e2e},{created},{committed},"
                line_b = f",{payer},{payee},{amt},{ccy},{src},{dst},{dn},{da},{cn},{ca}\n"
                details = (
                    f"<Refs><EndToEndId>{e2e}</EndToEndId><TxId>{tid}</TxId></Refs><RltdPties>"
                    f"<Dbtr><Pty><Nm>{dn}</Nm></Pty></Dbtr><DbtrAcct><Id><Othr><Id>{da}</Id>"
                    f"</Othr></Id></DbtrAcct><Cdtr><Pty><Nm>{cn}</Nm></Pty></Cdtr><CdtrAcct><Id>"
                    f"<Othr><Id>{ca}</Id></Othr></Id></CdtrAcct></RltdPties><RltdAgts>"
                )
            family = "DMCT" if src == dst else "XBCT"
            if payer_in:
                side = sides.get(payer)
                if side is None:
                    raise SettlementInputError(f"{payer} has no declared {ccy} totals")
                s, details_waiting, statement_waiting = side
                s[0] += minor
                s[2] += 1
                details_waiting.append(f"{line_a}debit{line_b}")
                if len(details_waiting) == detail_chunk:
                    ready.append(detail_name(payer))
                statement_waiting.append(
                    f'<Ntry><Amt Ccy="{ccy}">{amt}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK'
                    f"</Cd></Sts><BookgDt><DtTm>{committed}</DtTm></BookgDt><BkTxCd><Domn><Cd>"
                    f"PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>{family}</SubFmlyCd></Fmly></Domn>"
                    f"</BkTxCd><NtryDtls><TxDtls>{details}{creditor_agents[payee]}{_ENTRY_END}"
                )
                if len(statement_waiting) == chunk:
                    ready.append(statement_name(payer, ccy))
            if payee_in:
                side = sides.get(payee)
                if side is None:
                    raise SettlementInputError(f"{payee} has no declared {ccy} totals")
                s, details_waiting, statement_waiting = side
                s[1] += minor
                s[3] += 1
                details_waiting.append(f"{line_a}credit{line_b}")
                if len(details_waiting) == detail_chunk:
                    ready.append(detail_name(payee))
                statement_waiting.append(
                    f'<Ntry><Amt Ccy="{ccy}">{amt}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK'
                    f"</Cd></Sts><BookgDt><DtTm>{committed}</DtTm></BookgDt><BkTxCd><Domn><Cd>"
                    f"PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>{family}</SubFmlyCd></Fmly></Domn>"
                    f"</BkTxCd><NtryDtls><TxDtls>{details}{debtor_agents[payer]}{_ENTRY_END}"
                )
                if len(statement_waiting) == chunk:
                    ready.append(statement_name(payee, ccy))
            entries += payer_in + payee_in
        self.entries += entries
        return ready

    def _feed_lines(self, lines: FormattedLines) -> list[str]:
        """`feed` for lines a source formatted itself (see FormattedLines): what is left here
        is the checks, the sums and routing each side's text to its files. A line without
        its text (`line_a` empty) takes `feed` with its raw fields."""
        if lines.masking != self._masking:
            raise ValueError("lines formatted with another masking than the export's")
        # The side booking below is written out as in `feed`, not shared: routing both feeds
        # through one per-leg step measured 0.3-0.5 CPU-s more per million transfers.
        # tests/settlement/test_database.py holds the two paths' output byte-identical.
        members, chunk, ready = self.members, self.chunk_items, []
        only = lines.members
        detail_chunk = chunk * DETAIL_CHUNK_FACTOR
        debtor_agents, creditor_agents = self._debtor_agents, self._creditor_agents
        all_sides = self._sides
        entries = 0
        for line in lines:
            tid, payer, payee, minor, ccy, payee2, minor2, ccy2, committed, family, amt = line[:11]
            e2e, created, parties, details = line[12:16]
            if not details:
                ready += self.feed(_raw_legs(line, only))
                continue
            line_a = f"{tid},{e2e},{created},{committed},"
            legs = [(payer, payee, minor, ccy, amt)]
            if payee2:
                legs.append((payee, payee2, minor2, ccy2, line[11]))
            for payer, payee, minor_text, ccy, amt in legs:
                if only is not None and payer not in only and payee not in only:
                    continue
                line_b = f",{payer},{payee},{amt},{ccy}{parties}\n"
                leg_minor = int(minor_text)
                sides = all_sides.get(ccy)
                if sides is None or not 0 < leg_minor <= AMOUNT_MINOR_MAX or payer == payee:
                    raise SettlementInputError(f"transfer {tid}: not a settled leg")
                payer_in, payee_in = payer in members, payee in members
                if not (payer_in or payee_in):
                    raise SettlementInputError(f"transfer {tid} is not of this set")
                if payer not in debtor_agents or payee not in debtor_agents:
                    raise SettlementInputError(f"transfer {tid}: unknown party")
                if payer_in:
                    side = sides.get(payer)
                    if side is None:
                        raise SettlementInputError(f"{payer} has no declared {ccy} totals")
                    s, details_waiting, statement_waiting = side
                    s[0] += leg_minor
                    s[2] += 1
                    details_waiting.append(f"{line_a}debit{line_b}")
                    if len(details_waiting) == detail_chunk:
                        ready.append(detail_name(payer))
                    statement_waiting.append(
                        f'<Ntry><Amt Ccy="{ccy}">{amt}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>'
                        f"BOOK</Cd></Sts><BookgDt><DtTm>{committed}</DtTm></BookgDt><BkTxCd><Domn>"
                        f"<Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>{family}</SubFmlyCd></Fmly>"
                        f"</Domn></BkTxCd><NtryDtls><TxDtls>{details}{creditor_agents[payee]}"
                        f"{_ENTRY_END}"
                    )
                    if len(statement_waiting) == chunk:
                        ready.append(statement_name(payer, ccy))
                if payee_in:
                    side = sides.get(payee)
                    if side is None:
                        raise SettlementInputError(f"{payee} has no declared {ccy} totals")
                    s, details_waiting, statement_waiting = side
                    s[1] += leg_minor
                    s[3] += 1
                    details_waiting.append(f"{line_a}credit{line_b}")
                    if len(details_waiting) == detail_chunk:
                        ready.append(detail_name(payee))
                    statement_waiting.append(
                        f'<Ntry><Amt Ccy="{ccy}">{amt}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>'
                        f"BOOK</Cd></Sts><BookgDt><DtTm>{committed}</DtTm></BookgDt><BkTxCd><Domn>"
                        f"<Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>{family}</SubFmlyCd></Fmly>"
                        f"</Domn></BkTxCd><NtryDtls><TxDtls>{details}{debtor_agents[payer]}"
                        f"{_ENTRY_END}"
                    )
                    if len(statement_waiting) == chunk:
                        ready.append(statement_name(payee, ccy))
                entries += payer_in + payee_in
        self.entries += entries
        return ready


class FormattedLines(list[tuple[str, ...]]):
    """A batch of transfers whose text a source formatted itself, for an export masking as
    `masking` (the database source: PostgreSQL formats on its own core while the exporter
    routes). Each line holds, as text: transfer id, payer, payee, amount in minor units,
    currency, payee2, amount2 and currency2 of a conversion's second leg (payee -> payee2;
    empty without), booking time, bank transaction sub-family, the two amounts as
    `Money.format` writes them, then either the detail line up to the direction, the rest of
    each leg's detail line (without its newline) and the statement entry's details up to the
    counterparty agent, each as the plain path of `feed` writes them, followed by 8 empty
    fields; or 4 empty fields and the raw end-to-end id, creation time, source and
    destination schemes, debtor name and account, creditor name and account (unmasked), which
    `feed` formats. With `members`, legs touching none of them are left out."""

    def __init__(
        self,
        lines: Iterable[tuple[str, ...]],
        masking: Masking,
        members: frozenset[str] | None = None,
    ) -> None:
        super().__init__(lines)
        self.masking = masking
        self.members = members


def _raw_legs(line: tuple[str, ...], members: frozenset[str] | None) -> list[Leg]:
    """The legs of a FormattedLines line that came without its text."""
    tid, payer, payee, minor, ccy, payee2, minor2, ccy2, committed = line[:9]
    e2e, created = line[12:14]
    src, dst, dn, da, cn, ca = line[16:22]
    out: list[Leg] = []
    for a, b, m, c in ((payer, payee, minor, ccy), (payee, payee2, minor2, ccy2)):
        if b and (members is None or a in members or b in members):
            rest = (src, dst, dn, da, cn, ca)
            out.append((tid, e2e, created, committed, a, b, int(m), c, *rest))
    return out


_ENTRY_END = "</RltdAgts></TxDtls></NtryDtls></Ntry>\n"
# A booking time as `booking_time` and the database source write it.
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\Z")


def _careful_row(r: Leg, amt: str, dn: str, da: str, cn: str, ca: str) -> tuple[str, str, str]:
    """The CSV halves and entry details of a leg whose text needs escaping, quoting or
    leaving elements out. Times are taken as the source formatted them (not checked on the
    plain path, where they hold nothing that needs escaping); here they must be ISO 8601."""
    tid, e2e, created, committed, payer, payee, _, ccy, src, dst, *_person = r
    if not (_TIME_RE.match(created) and _TIME_RE.match(committed)):
        raise SettlementInputError(f"transfer {tid}: times are not ISO 8601")
    a = csv_text([(_cell(tid), _cell(e2e), created, committed)])
    b = csv_text(
        [(payer, payee, amt, ccy, _cell(src), _cell(dst), _cell(dn), _cell(da), _cell(cn),
          _cell(ca))]
    )  # fmt: skip
    ref = _xml(ref35(tid), 35)
    refs = f"<Refs>{_el('EndToEndId', e2e, 35)}{_el('TxId', ref, 35)}</Refs>"
    parties = f"<RltdPties>{_party_xml('Dbtr', dn, da)}{_party_xml('Cdtr', cn, ca)}</RltdPties>"
    return a[:-1] + ",", "," + b, refs + parties + "<RltdAgts>"


def _balance(code: str, amount: str, ccy: str, ind: str, at: datetime) -> str:
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="{ccy}">{amount}</Amt>'
        f"<CdtDbtInd>{ind}</CdtDbtInd><Dt><DtTm>{iso(at)}</DtTm></Dt></Bal>"
    )


def read_detail_totals(lines: Iterable[str]) -> tuple[dict[str, list[int]], list[str]]:
    """Recompute a detail CSV's totals per currency: [debits, credits, debit count, credit
    count] in minor units, streaming. Problems are returned, never raised."""
    sums: dict[str, list[int]] = {}
    problems: list[str] = []
    reader = csv.reader(lines)
    if tuple(next(reader, ())) != DETAIL_HEADER:
        return sums, ["header differs from the detail format"]
    for r in reader:
        try:
            amount = Money.parse(r[7], r[8], allow_zero=False)
            slot = ("debit", "credit").index(r[4])
        except (ValueError, IndexError, ArithmeticError) as exc:
            problems.append(f"line {reader.line_num}: {exc}")
            if len(problems) >= 20:
                break
            continue
        s = sums.setdefault(amount.currency, [0, 0, 0, 0])
        s[slot] += amount.minor
        s[2 + slot] += 1
    return sums, problems


# ---------------------------------------------------------------- pacs.009


def pacs009(window: Window, currency: str, generated_at: datetime) -> bytes | None:
    """Settlement instructions of one currency: one FI-to-FI transfer per participant whose net
    is not zero, between it and Baygate's settlement account. None when nothing moves."""
    system = window.system(currency)
    moving = [t for t in window.totals_for(currency) if t.net.minor]
    if not moving:
        return None
    total = Money(sum(abs(t.net.minor) for t in moving), currency)
    vdate = window.value_date.isoformat()
    gateway = f"<FinInstnId><Nm>{_xml(window.gateway_name, 140)}</Nm></FinInstnId>"
    account = f"<Id><Othr><Id>{_xml(system.account, 34)}</Id></Othr></Id>"
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{PACS009_NS}"><FICdtTrf>\n'
        f"<GrpHdr><MsgId>{_xml(msg_id(window.window_id, currency), 35)}</MsgId>"
        f"<CreDtTm>{iso(generated_at)}</CreDtTm><NbOfTxs>{len(moving)}</NbOfTxs>"
        f'<CtrlSum>{total.format()}</CtrlSum><TtlIntrBkSttlmAmt Ccy="{currency}">'
        f"{total.format()}</TtlIntrBkSttlmAmt><IntrBkSttlmDt>{vdate}</IntrBkSttlmDt>"
        f"<SttlmInf><SttlmMtd>CLRG</SttlmMtd><ClrSys><Prtry>{_xml(system.code, 35)}</Prtry>"
        f"</ClrSys></SttlmInf></GrpHdr>\n"
    ]
    for t in moving:
        p = window.participant(t.participant_id)
        member = _fi_xml(p)
        if t.net.minor < 0:
            sides = f"<Dbtr>{member}</Dbtr><Cdtr>{gateway}</Cdtr><CdtrAcct>{account}</CdtrAcct>"
        else:
            sides = f"<Dbtr>{gateway}</Dbtr><DbtrAcct>{account}</DbtrAcct><Cdtr>{member}</Cdtr>"
        ref = _xml(msg_id(window.window_id, p.id, currency), 35)
        parts.append(
            f"<CdtTrfTxInf><PmtId><InstrId>{ref}</InstrId><EndToEndId>{ref}</EndToEndId>"
            f'<TxId>{ref}</TxId></PmtId><IntrBkSttlmAmt Ccy="{currency}">'
            f"{Money(abs(t.net.minor), currency).format()}</IntrBkSttlmAmt>"
            f"<IntrBkSttlmDt>{vdate}</IntrBkSttlmDt>{sides}<RmtInf><Ustrd>"
            f"{_xml(f'Net settlement of window {window.window_id}', 140)}</Ustrd></RmtInf>"
            f"</CdtTrfTxInf>\n"
        )
    parts.append("</FICdtTrf></Document>\n")
    return "".join(parts).encode()


_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def read_pacs009(data: bytes, currency: str) -> tuple[int, int, list[str]]:
    """Recompute a pacs.009's control totals: (transactions, their sum in minor units,
    problems), where the group header's NbOfTxs and CtrlSum must match the transactions."""
    try:
        root = etree.fromstring(data, _SAFE_XML)
    except etree.XMLSyntaxError as exc:
        return 0, 0, [f"not XML: {exc}"]
    ns = {"p": PACS009_NS}
    total, problems = 0, []
    txs = root.findall("p:FICdtTrf/p:CdtTrfTxInf", ns)
    for i, tx in enumerate(txs, start=1):
        amount = tx.find("p:IntrBkSttlmAmt", ns)
        try:
            if amount is None or amount.get("Ccy") != currency:
                raise ValueError(f"no {currency} settlement amount")
            total += Money.parse(amount.text or "", currency, allow_zero=False).minor
        except ValueError as exc:
            problems.append(f"transaction {i}: {exc}")
    header = root.find("p:FICdtTrf/p:GrpHdr", ns)
    declared = (
        (header.findtext("p:NbOfTxs", namespaces=ns), header.findtext("p:CtrlSum", namespaces=ns))
        if header is not None
        else (None, None)
    )
    if declared[0] != str(len(txs)):
        problems.append(f"NbOfTxs {declared[0]} but {len(txs)} transactions")
    try:
        if Money.parse(declared[1] or "", currency).minor != total:
            problems.append(f"CtrlSum {declared[1]} differs from the transactions' sum")
    except ValueError:
        problems.append(f"CtrlSum {declared[1]!r} unreadable")
    return len(txs), total, problems


def control_totals(window: Window) -> dict[str, dict[str, object]]:
    """The window's control totals per currency, as the manifest carries them."""
    out: dict[str, dict[str, object]] = {}
    for ccy in window.currencies:
        rows = window.totals_for(ccy)
        zero = Money(0, ccy)
        out[ccy] = {
            "settlement_system": window.system(ccy).code,
            "participants": len(rows),
            "gross_debits": sum((t.gross_debits for t in rows), zero).format(),
            "gross_credits": sum((t.gross_credits for t in rows), zero).format(),
            "net": sum((t.net for t in rows), zero).format(),
            "settlement_amount": Money(sum(abs(t.net.minor) for t in rows), ccy).format(),
            "debit_count": sum(t.debit_count for t in rows),
            "credit_count": sum(t.credit_count for t in rows),
        }
    return out
