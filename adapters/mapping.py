"""Mapping tables: where each canonical field lives in each scheme's messages, as data.

One `FieldMap` row per canonical field per scheme. `paths` are element paths below the
message's top element (`{a,b}` means one of two alternatives); no path means the scheme does
not carry the field, and then `rule` must say what happens instead. The same rows drive the
integrator documentation (`adapters.mapping_doc`) and are checked against the codecs' output
by the tests, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FieldMap:
    field: str
    paths: tuple[str, ...] = ()
    rule: str = ""
    direction: str = "both"  # "in": read from inbound only, "out": written on outbound only

    def __post_init__(self) -> None:
        assert self.paths or self.rule, f"{self.field}: a field not carried needs a rule"
        assert self.direction in ("both", "in", "out")


# Every canonical field, in documentation order, with what it means.
CANONICAL_FIELDS: tuple[tuple[str, str], ...] = (
    ("msg_id", "message identification"),
    ("created_at", "message creation date and time, as sent"),
    ("instructing_member_id", "sending participant's clearing member id (message level)"),
    ("end_to_end_id", "end-to-end reference set by the debtor side"),
    ("tx_id", "interbank transaction reference"),
    ("instr_id", "point-to-point instruction reference"),
    ("uetr", "unique end-to-end transaction reference (UUIDv4)"),
    ("id", "Baygate's own transfer id"),
    ("amount", "amount the debtor agent pays, in the sender's settlement currency"),
    ("creditor_amount", "amount the creditor agent receives after conversion"),
    ("instructed_amount", "amount as instructed by the debtor, before conversion"),
    ("exchange_rate", "rate between instructed and settlement amounts"),
    ("quote_id", "Baygate FX quote"),
    ("charge_bearer", "who bears the charges (DEBT, CRED, SHAR, SLEV)"),
    ("category_purpose", "category purpose code"),
    ("priority", "urgent or normal: order in the liquidity-saving queue"),
    ("purpose", "purpose code"),
    ("remittance_info", "unstructured remittance information"),
    ("debtor.name", "payer name"),
    ("debtor.id", "payer identification (HKID, CNRIC, CNUSCC, MOBIR, OTHR)"),
    ("debtor_account.number", "payer account number"),
    ("debtor_account.proxy", "payer proxy (MOBN, EMAL, SHID)"),
    ("debtor_agent", "payer's provider: clearing system and member id"),
    ("debtor_agent.name", "payer's provider name"),
    ("creditor.name", "payee name"),
    ("creditor.id", "payee identification"),
    ("creditor_account.number", "payee account number"),
    ("creditor_account.proxy", "payee proxy (MOBN, EMAL, SHID)"),
    ("creditor_agent", "payee's provider: clearing system and member id"),
    ("creditor_agent.name", "payee's provider name"),
    ("source_scheme", "scheme the transfer came from"),
    ("destination_scheme", "scheme of the creditor agent"),
    ("extras", "Baygate-internal annotations"),
)
FIELD_NAMES = tuple(name for name, _ in CANONICAL_FIELDS)


def table(*rows: FieldMap) -> tuple[FieldMap, ...]:
    """A complete table in canonical order; every canonical field exactly once."""
    by_field = {r.field: r for r in rows}
    assert len(by_field) == len(rows), "a field appears twice"
    missing = [f for f in FIELD_NAMES if f not in by_field]
    unknown = [f for f in by_field if f not in FIELD_NAMES]
    assert not missing and not unknown, f"missing {missing}, unknown {unknown}"
    return tuple(by_field[f] for f in FIELD_NAMES)


def override(base: tuple[FieldMap, ...], **changes: dict[str, object]) -> tuple[FieldMap, ...]:
    """A scheme's table: the shared one with some rows changed (`field=dict(rule=...)`)."""
    rows = {r.field: r for r in base}
    for key, change in changes.items():
        name = key.replace("__", ".")
        assert name in rows, f"override of unknown field {name}"
        rows[name] = replace(rows[name], **change)  # type: ignore[arg-type]
    return table(*rows.values())


def row(rows: tuple[FieldMap, ...], name: str) -> FieldMap:
    for r in rows:
        if r.field == name:
            return r
    raise KeyError(name)
