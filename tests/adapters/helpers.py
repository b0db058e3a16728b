"""Fixtures on disk, hypothesis strategies for canonical transfers, and the reference model of
what each scheme gives back after encoding then decoding (its documented rules, written out
independently of the codecs)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric, uscc

from clearing.model import (
    Account,
    Agent,
    Party,
    PartyId,
    PartyIdType,
    Proxy,
    ProxyType,
    Transfer,
)
from clearing.money import Money

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
XSD_DIR = REPO.parent / "shared" / "iso20022"
SCHEMES = ("hk-fps", "cn-ibps", "mo-fps")
CURRENCIES = {"hk-fps": ("HKD", "CNY"), "cn-ibps": ("CNY",), "mo-fps": ("MOP", "HKD")}
CLEARING_SCHEME = {"HKNCC": "hk-fps", "CNAPS": "cn-ibps", "MOFPS": "mo-fps"}
HKT = timezone(timedelta(hours=8))


def fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def all_fixtures() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*") if p.is_file())


# ---- identifiers -------------------------------------------------------------------------

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def hkid_check(letters: str, digits: str) -> str:
    """Reference HKID check character, written from the published rule (weights 9..2, mod 11)."""
    chars = (" " + letters) if len(letters) == 1 else letters
    total = 0
    for weight, c in zip((9, 8), chars, strict=True):
        total += weight * (36 if c == " " else _LETTERS.index(c) + 10)
    for weight, d in zip(range(7, 1, -1), digits, strict=True):
        total += weight * int(d)
    check = -total % 11
    return "A" if check == 10 else str(check)


digits = st.integers(0, 9).map(str)


def digit_string(n_min: int, n_max: int) -> st.SearchStrategy[str]:
    return st.lists(digits, min_size=n_min, max_size=n_max).map("".join)


hkids = st.builds(
    lambda letters, body: letters + body + hkid_check(letters, body),
    st.text(_LETTERS, min_size=1, max_size=2),
    digit_string(6, 6),
)
rics = st.builds(
    lambda area, day, seq: (lambda b: b + ric.calc_check_digit(b + "0"))(
        f"{area}{day:%Y%m%d}{seq:03d}"
    ),
    st.sampled_from(["110105", "310104", "440106"]),
    st.dates(datetime(1990, 1, 1).date(), datetime(2005, 12, 31).date()),
    st.integers(0, 999),
).filter(ric.is_valid)
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
usccs = st.builds(
    lambda head, tail: (lambda b: b + uscc.calc_check_digit(b))(head + tail),
    digit_string(8, 8),
    st.text(_USCC_ALPHABET, min_size=9, max_size=9),
)
mo_birs = st.builds(lambda first, rest: first + rest, st.sampled_from("1578"), digit_string(7, 7))
party_ids = st.one_of(
    hkids.map(lambda v: PartyId(PartyIdType.HKID, v)),
    rics.map(lambda v: PartyId(PartyIdType.CN_RIC, v)),
    usccs.map(lambda v: PartyId(PartyIdType.CN_USCC, v)),
    mo_birs.map(lambda v: PartyId(PartyIdType.MO_BIR, v)),
    st.from_regex(r"\A[A-Z0-9][A-Z0-9 -]{0,33}[A-Z0-9]\Z").map(
        lambda v: PartyId(PartyIdType.OTHER, v)
    ),
)
fps_ids = digit_string(6, 8).map(lambda body: body + luhn.calc_check_digit(body))
mobiles = st.one_of(
    st.builds(lambda d, r: f"+852-{d}{r}", st.sampled_from("456789"), digit_string(7, 7)),
    st.builds(lambda d, r: f"+86-1{d}{r}", st.sampled_from("3456789"), digit_string(9, 9)),
    digit_string(7, 7).map(lambda r: f"+853-6{r}"),
)
emails = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}@[a-z0-9]{1,10}\.(hk|cn|mo|com)\Z")
proxies = st.one_of(
    mobiles.map(lambda v: Proxy(ProxyType.MOBILE, v)),
    emails.map(lambda v: Proxy(ProxyType.EMAIL, v)),
    fps_ids.map(lambda v: Proxy(ProxyType.FPS_ID, v)),
)
ACCOUNT_DIGITS = {"HKNCC": (6, 17), "CNAPS": (6, 32), "MOFPS": (6, 20)}
MEMBER_DIGITS = {"HKNCC": 3, "CNAPS": 12, "MOFPS": 3}

# ---- text --------------------------------------------------------------------------------

_TEXT_CHARS = st.one_of(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,-'&<>\"()/"),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK unified ideographs
    st.sampled_from("陳李張黃何澳門香港深圳有限公司銀行"),
)


def texts(size_max: int) -> st.SearchStrategy[str]:
    return st.text(_TEXT_CHARS, min_size=1, max_size=size_max).map(str.strip).filter(bool)


ids35 = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9/.-]{0,34}\Z")
uetrs = st.uuids(version=4).map(str)
codes = st.one_of(st.from_regex(r"\A[A-Z]{4}\Z"), st.from_regex(r"\A[A-Z0-9]{1,3}[0-9]{2,8}\Z"))
created = st.one_of(
    st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)),
    st.datetimes(
        datetime(2000, 1, 1),
        datetime(2099, 12, 31),
        timezones=st.sampled_from([UTC, HKT, timezone(timedelta(hours=-5, minutes=-30))]),
    ),
)

# ---- transfers ---------------------------------------------------------------------------


@st.composite
def agents(draw: st.DrawFn, systems: tuple[str, ...] = ("HKNCC", "CNAPS", "MOFPS")) -> Agent:
    system = draw(st.sampled_from(systems))
    member = draw(digit_string(MEMBER_DIGITS[system], MEMBER_DIGITS[system]))
    return Agent(system, member, draw(st.none() | texts(60)))


@st.composite
def accounts(draw: st.DrawFn, holder: Agent) -> Account:
    lo, hi = ACCOUNT_DIGITS[holder.clearing_system]
    number = draw(st.none() | digit_string(lo, hi))
    proxy = draw(st.none() | proxies) if number is not None else draw(proxies)
    return Account(number, proxy)


@st.composite
def transfers(
    draw: st.DrawFn, scheme: str, *, name_max: int = 60, remittance_max: int = 140
) -> Transfer:
    """A transfer the scheme can carry without loss beyond its documented rules."""
    debtor_agent, creditor_agent = draw(agents()), draw(agents())
    ibps = scheme == "cn-ibps"
    return Transfer(
        msg_id="M",
        end_to_end_id=draw(ids35),
        source_scheme=scheme,
        amount=Money(draw(st.integers(1, 10**13)), draw(st.sampled_from(CURRENCIES[scheme]))),
        debtor=Party(draw(texts(name_max)), draw(st.none() | party_ids)),
        debtor_account=draw(accounts(debtor_agent)),
        debtor_agent=debtor_agent,
        creditor=Party(draw(texts(name_max)), draw(st.none() | party_ids)),
        creditor_account=draw(accounts(creditor_agent)),
        creditor_agent=creditor_agent,
        destination_scheme=CLEARING_SCHEME[creditor_agent.clearing_system],
        tx_id=draw(st.none() | ids35),
        instr_id=None if ibps else draw(st.none() | ids35),
        uetr=draw(st.none() | uetrs),
        instructed_amount=draw(
            st.none()
            | st.builds(
                Money, st.integers(1, 10**12), st.sampled_from(["HKD", "CNY", "MOP", "USD"])
            )
        ),
        exchange_rate=draw(st.none() | st.from_regex(r"\A[1-9][0-9]{0,3}\.[0-9]{1,6}\Z")),
        purpose=draw(st.none() | codes),
        category_purpose=draw(st.none() | codes),
        remittance_info=draw(st.none() | texts(remittance_max)),
        charge_bearer=None if ibps else draw(st.sampled_from(["DEBT", "CRED", "SHAR", "SLEV"])),
        created_at=draw(created),
    )


def after_round_trip(t: Transfer, scheme: str, msg_id: str, created_at: datetime) -> Transfer:
    """What decoding the scheme's own encoding gives back: the documented rules, one by one."""
    expected = replace(
        t,
        msg_id=msg_id,
        created_at=created_at,
        source_scheme=scheme,
        destination_scheme=CLEARING_SCHEME[t.creditor_agent.clearing_system]
        if t.creditor_agent
        else None,
        id=None,  # outbound only (pacs ClrSysRef), not carried (ibps.101)
        quote_id=None,
        extras=(),
    )
    if scheme == "cn-ibps":
        cut = 60
        expected = replace(
            expected,
            instr_id=None,  # point-to-point reference, not forwarded
            tx_id=t.tx_id or t.end_to_end_id,  # TxId is mandatory in IBPS
            charge_bearer=None,
        )
    else:
        cut = 140
        expected = replace(expected, charge_bearer=t.charge_bearer or "SLEV")
    return replace(
        expected,
        debtor=replace(t.debtor, name=t.debtor.name[:cut].rstrip()),
        creditor=replace(t.creditor, name=t.creditor.name[:cut].rstrip()),
    )


HOME_CURRENCY = {"hk-fps": "HKD", "cn-ibps": "CNY", "mo-fps": "MOP"}


def sample_transfer(scheme: str = "hk-fps", **changes: object) -> Transfer:
    """A southbound-style transfer every scheme can carry, amount in the scheme's home currency."""
    t = Transfer(
        msg_id="SAMPLE-1",
        end_to_end_id="SAMPLE-E2E-1",
        source_scheme="cn-ibps",
        amount=Money(1_000_00, HOME_CURRENCY[scheme]),
        debtor=Party("张伟", PartyId(PartyIdType.CN_RIC, "440305199003071236")),
        debtor_account=Account("6222020200012345678"),
        debtor_agent=Agent("CNAPS", "102100099996", "中国工商银行"),
        creditor=Party("陳美玲"),
        creditor_account=Account(None, Proxy(ProxyType.FPS_ID, "9876541")),
        creditor_agent=Agent("HKNCC", "004"),
        destination_scheme="hk-fps",
        tx_id="SAMPLE-TX-1",
        remittance_info="家用 household",
        created_at=datetime(2025, 6, 22, 10, 21, tzinfo=HKT),
    )
    return replace(t, **changes)  # type: ignore[arg-type]
