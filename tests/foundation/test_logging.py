"""Redaction: names, accounts, ID numbers and mobiles never reach the log in clear."""

from __future__ import annotations

import io
import json

import structlog

from gateway.logging import configure_logging, get_logger


def test_person_data_is_masked_in_json_logs() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.contextvars.bind_contextvars(participant="hk-801", transfer_id="t-123")
    log = get_logger("test")
    secrets = {
        "debtor_name": "Chan Tai Man",
        "creditor_account": "6222020200112233445",
        "id_number": "11010519491231002X",
        "mobile": "+852-91234567",
    }
    log.info("accepted", **secrets, note="payee +86-13800138000 e-mail li.wei@example.cn id 11010519491231002X")
    log.info("nested", payload={"creditor_name": "李伟", "items": [{"account": "801123456789"}]})
    structlog.contextvars.clear_contextvars()
    text = out.getvalue()
    for value in [*secrets.values(), "+86-13800138000", "li.wei@example.cn", "李伟", "801123456789"]:
        assert value not in text, value
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["participant"] == "hk-801" and lines[0]["transfer_id"] == "t-123"
    assert lines[0]["mobile"].endswith("4567") and lines[0]["mobile"].startswith("*")
    assert lines[1]["payload"]["items"][0]["account"].endswith("6789")
