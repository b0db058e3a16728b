"""Participant directory: a YAML or JSON file validated whole, then loaded in one transaction.

A file with any problem changes nothing; every problem is reported with its path
(`participants[2].limits[0].net_debit_cap: ...`).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Literal

import asyncpg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clearing.money import CURRENCY_EXPONENTS, Money, MoneyError

SCHEME_CLEARING_SYSTEMS = {"hk-fps": "HKNCC", "cn-ibps": "CNAPS", "mo-fps": "MOFPS"}
_CODE_RE = {"HKNCC": r"^\d{3}$", "CNAPS": r"^\d{12}$", "MOFPS": r"^\d{3}$"}


class DirectoryError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SettlementSystemIn(_Strict):
    currency: str
    code: str = Field(min_length=1, max_length=35)
    name: str = Field(min_length=1, max_length=140)

    @field_validator("currency")
    @classmethod
    def _ccy(cls, v: str) -> str:
        if v not in CURRENCY_EXPONENTS:
            raise ValueError(f"unsupported currency {v!r}")
        return v


class LimitIn(_Strict):
    currency: str
    net_debit_cap: str = Field(description="decimal amount in the currency")
    liquidity_cover: str
    liquidity_saving: bool = False

    @model_validator(mode="after")
    def _amounts(self) -> LimitIn:
        for field in ("net_debit_cap", "liquidity_cover"):
            try:
                Money.parse(getattr(self, field), self.currency)
            except MoneyError as exc:
                raise ValueError(f"{field}: {exc.message}") from None
        return self

    def minor(self, field: str) -> int:
        return Money.parse(getattr(self, field), self.currency).minor


class ParticipantIn(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    name: str = Field(min_length=1, max_length=140)
    scheme: Literal["hk-fps", "cn-ibps", "mo-fps"]
    clearing_code: str
    role: Literal["provider", "fx_provider"] = "provider"
    status: Literal["active", "suspended"] = "active"
    endpoint_url: str | None = Field(default=None, max_length=2048)
    public_key_ed25519: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    limits: list[LimitIn] = Field(default_factory=list, max_length=16)

    @property
    def clearing_system(self) -> str:
        return SCHEME_CLEARING_SYSTEMS[self.scheme]

    @field_validator("public_key_ed25519")
    @classmethod
    def _key(cls, v: str) -> str:
        try:
            raw = base64.b64decode(v, validate=True)
        except ValueError:
            raise ValueError("not base64") from None
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        return v

    @model_validator(mode="after")
    def _code(self) -> ParticipantIn:
        if not re.match(_CODE_RE[self.clearing_system], self.clearing_code):
            raise ValueError(
                f"clearing_code {self.clearing_code!r} is not a valid {self.clearing_system} code"
            )
        ccys = [lim.currency for lim in self.limits]
        if len(set(ccys)) != len(ccys):
            raise ValueError("limits: a currency appears twice")
        return self


class ProxyIn(_Strict):
    type: Literal["MOBN", "EMAL", "SHID"]
    value: str = Field(min_length=3, max_length=2048)
    participant: str
    account: str = Field(min_length=1, max_length=34)


class DirectoryIn(_Strict):
    settlement_systems: list[SettlementSystemIn] = Field(max_length=16)
    participants: list[ParticipantIn] = Field(max_length=10_000)
    proxies: list[ProxyIn] = Field(default_factory=list, max_length=1_000_000)

    @model_validator(mode="after")
    def _refs(self) -> DirectoryIn:
        problems = []
        ids = [p.id for p in self.participants]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            problems.append(f"participants: duplicate ids {sorted(dup)}")
        codes = [(p.clearing_system, p.clearing_code) for p in self.participants]
        if len(set(codes)) != len(codes):
            problems.append("participants: a clearing code appears twice")
        known_ccy = {s.currency for s in self.settlement_systems}
        for i, p in enumerate(self.participants):
            for j, lim in enumerate(p.limits):
                if lim.currency not in known_ccy:
                    problems.append(f"participants[{i}].limits[{j}].currency: no settlement system for {lim.currency}")
        idset = set(ids)
        keys = set()
        for i, x in enumerate(self.proxies):
            if x.participant not in idset:
                problems.append(f"proxies[{i}].participant: unknown participant {x.participant!r}")
            if (x.type, x.value) in keys:
                problems.append(f"proxies[{i}]: duplicate proxy {x.type}")
            keys.add((x.type, x.value))
        if problems:
            raise ValueError("; ".join(problems))
        return self


def parse_directory(data: bytes, filename: str = "") -> DirectoryIn:
    try:
        raw = json.loads(data) if filename.endswith(".json") else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as exc:
        raise DirectoryError([f"{filename or 'file'}: not valid YAML/JSON: {exc}"]) from None
    try:
        return DirectoryIn.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            problems.append(f"{path or '(root)'}: {err['msg']}")
        raise DirectoryError(problems) from None


def load_file(path: Path) -> DirectoryIn:
    return parse_directory(path.read_bytes(), path.name)


async def apply_directory(conn: asyncpg.Connection, d: DirectoryIn) -> dict[str, int]:
    """Upsert the whole directory in one transaction."""
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO settlement_systems (currency, code, name) VALUES ($1, $2, $3)
               ON CONFLICT (currency) DO UPDATE SET code = EXCLUDED.code, name = EXCLUDED.name""",
            [(s.currency, s.code, s.name) for s in d.settlement_systems],
        )
        await conn.executemany(
            """INSERT INTO participants (id, name, scheme, clearing_system, clearing_code, role, status,
                                         endpoint_url, public_key_ed25519)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, scheme = EXCLUDED.scheme,
                 clearing_system = EXCLUDED.clearing_system, clearing_code = EXCLUDED.clearing_code,
                 role = EXCLUDED.role, status = EXCLUDED.status, endpoint_url = EXCLUDED.endpoint_url,
                 public_key_ed25519 = EXCLUDED.public_key_ed25519, updated_at = now()""",
            [
                (p.id, p.name, p.scheme, p.clearing_system, p.clearing_code, p.role, p.status,
                 p.endpoint_url, p.public_key_ed25519)
                for p in d.participants
            ],
        )
        await conn.executemany(
            """INSERT INTO participant_limits (participant_id, currency, net_debit_cap, liquidity_cover,
                                               liquidity_saving)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (participant_id, currency) DO UPDATE SET
                 net_debit_cap = EXCLUDED.net_debit_cap, liquidity_cover = EXCLUDED.liquidity_cover,
                 liquidity_saving = EXCLUDED.liquidity_saving, updated_at = now()""",
            [
                (p.id, lim.currency, lim.minor("net_debit_cap"), lim.minor("liquidity_cover"),
                 lim.liquidity_saving)
                for p in d.participants
                for lim in p.limits
            ],
        )
        await conn.executemany(
            """INSERT INTO proxies (type, value, participant_id, account_number) VALUES ($1, $2, $3, $4)
               ON CONFLICT (type, value) DO UPDATE SET participant_id = EXCLUDED.participant_id,
                 account_number = EXCLUDED.account_number""",
            [(x.type, x.value, x.participant, x.account) for x in d.proxies],
        )
    return {
        "participants": len(d.participants),
        "proxies": len(d.proxies),
        "limits": sum(len(p.limits) for p in d.participants),
    }


async def list_participants(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, name, scheme, clearing_system, clearing_code, role, status, endpoint_url
           FROM participants ORDER BY id"""
    )
