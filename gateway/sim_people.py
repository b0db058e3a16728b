"""Fictitious but well-formed people, companies and accounts for generated traffic.

Every value passes the adapters' identifier checks (adapters.identifiers): HKIDs carry the
right check character, Mainland resident IDs a real Guangdong area code, a birth date and
the GB 11643 check character, USCCs the GB 32100 one, FPS IDs a Luhn check digit. Names
follow local usage: romanised Cantonese with the surname in capitals for Hong Kong, Chinese
characters for the Mainland, Cantonese or Portuguese for Macau. All draws come from the
caller's `random.Random`, so a seed reproduces a run.
"""

from __future__ import annotations

import datetime as dt
import random

from stdnum import luhn
from stdnum.cn import ric, uscc

from adapters.hk_fps.identifiers import hkid_check_char
from clearing.model import Party, PartyId, PartyIdType, Proxy, ProxyType

HK_SURNAMES = ("CHAN", "WONG", "LEUNG", "LAU", "CHEUNG", "LEE", "NG", "HO", "LAM", "TSANG", "YIP")
HK_GIVEN = ("Tai Man", "Siu Ming", "Ka Yan", "Wing Sze", "Chi Keung", "Mei Ling", "Ho Yin",
            "Wai Kit", "Hoi Ting", "Kwok Wing", "Sze Wan", "Chun Hei")  # fmt: skip
CN_SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "梁", "何", "郭", "林")
CN_GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛",
            "明", "超", "秀英", "华", "平", "刚", "嘉欣", "子轩", "浩然", "思琪", "梓涵")  # fmt: skip
MO_PORTUGUESE = ("Maria da Silva Lopes", "João Manuel Rocha", "Ana Sofia Marques",
                 "Carlos Alberto Sousa", "Rita Fernandes Ho", "Miguel Senna Fernandes")  # fmt: skip
COMPANY_WORDS = ("Pearl", "Harbour", "Lotus", "Bay", "Delta", "Dragon", "Orchid", "Jade")
COMPANY_KINDS_HK = ("Trading Limited", "Logistics Limited", "Holdings Limited")
COMPANY_KINDS_CN = ("贸易有限公司", "科技有限公司", "物流有限公司")
# Guangdong areas valid for births from 1986 on (stdnum's GB/T 2260 table).
CN_AREAS = ("440103", "440104", "440105", "440106", "440303", "440304", "440305", "440402")
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
BIRTH_YEARS = (1986, 2004)  # the area codes above are valid for births in these years


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def hkid(rng: random.Random) -> str:
    letters = rng.choice("ACDEGHKPRVYZ") if rng.random() < 0.9 else "XA"
    digits = _digits(rng, 6)
    return letters + digits + hkid_check_char(letters, digits)


def cn_ric(rng: random.Random) -> str:
    born = dt.date(rng.randint(*BIRTH_YEARS), 1, 1) + dt.timedelta(rng.randint(0, 364))
    body = rng.choice(CN_AREAS) + born.strftime("%Y%m%d") + _digits(rng, 3)
    return body + ric.calc_check_digit(body + "0")


def cn_uscc(rng: random.Random) -> str:
    body = "91" + rng.choice(CN_AREAS) + "".join(rng.choice(_USCC_ALPHABET) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def mo_bir(rng: random.Random) -> str:
    return rng.choice("1578") + _digits(rng, 7)


def fps_id(rng: random.Random) -> str:
    body = rng.choice("123456789") + _digits(rng, rng.randint(5, 7))
    return body + luhn.calc_check_digit(body)


def mobile(rng: random.Random, scheme: str) -> str:
    if scheme == "cn-ibps":
        return f"+86-1{rng.choice('3456789')}{_digits(rng, 9)}"
    if scheme == "mo-fps":
        return f"+853-6{_digits(rng, 7)}"
    return f"+852-{rng.choice('5679')}{_digits(rng, 7)}"


def email(rng: random.Random, scheme: str) -> str:
    tld = {"cn-ibps": "cn", "mo-fps": "mo"}.get(scheme, "hk")
    user = f"{rng.choice(HK_SURNAMES).lower()}.{_digits(rng, 5)}"
    return f"{user}@example.{tld}"


def person_name(rng: random.Random, scheme: str) -> str:
    if scheme == "cn-ibps":
        return rng.choice(CN_SURNAMES) + rng.choice(CN_GIVEN)
    if scheme == "mo-fps" and rng.random() < 0.3:
        return rng.choice(MO_PORTUGUESE)
    return f"{rng.choice(HK_SURNAMES)} {rng.choice(HK_GIVEN)}"


def company_name(rng: random.Random, scheme: str) -> str:
    if scheme == "cn-ibps":
        return (
            rng.choice(("广州", "深圳", "珠海", "佛山"))
            + rng.choice(("珠江", "南粤", "岭南"))
            + rng.choice(COMPANY_KINDS_CN)
        )
    return f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS_HK)}"  # fmt: skip


def debtor(rng: random.Random, scheme: str, company_ratio: float = 0.1) -> Party:
    """A payer with the identity document its scheme's corridor rules look at."""
    if rng.random() < company_ratio and scheme == "cn-ibps":
        return Party(company_name(rng, scheme), PartyId(PartyIdType.CN_USCC, cn_uscc(rng)))
    if scheme == "cn-ibps":
        return Party(person_name(rng, scheme), PartyId(PartyIdType.CN_RIC, cn_ric(rng)))
    if scheme == "mo-fps":
        return Party(person_name(rng, scheme), PartyId(PartyIdType.MO_BIR, mo_bir(rng)))
    return Party(person_name(rng, scheme), PartyId(PartyIdType.HKID, hkid(rng)))


def account_number(rng: random.Random, scheme: str, clearing_code: str) -> str:
    """A customer account at a provider: bank-card style for the Mainland, code-prefixed elsewhere."""
    if scheme == "cn-ibps":
        return "62" + rng.choice(("2202", "2848", "1700", "1466")) + _digits(rng, 13)
    return clearing_code[-3:] + _digits(rng, 9)


def random_proxy(rng: random.Random, scheme: str) -> Proxy:
    """A well-formed proxy of the kinds the scheme uses (probably not registered anywhere)."""
    kinds = [ProxyType.MOBILE, ProxyType.EMAIL]
    if scheme != "cn-ibps":
        kinds.append(ProxyType.FPS_ID)
    kind = rng.choice(kinds)
    if kind is ProxyType.MOBILE:
        return Proxy(kind, mobile(rng, scheme))
    if kind is ProxyType.EMAIL:
        return Proxy(kind, email(rng, scheme))
    return Proxy(kind, fps_id(rng))


REMITTANCE = ("Rent", "Dinner", "Tuition fee", "Family support", "Invoice", "Gift", "学费", "生活费", "货款")  # fmt: skip


def remittance(rng: random.Random) -> str:
    text = rng.choice(REMITTANCE)
    return f"{text} {rng.randint(1, 9999):04d}" if text == "Invoice" else text
