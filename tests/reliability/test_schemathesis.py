"""Schemathesis against `/openapi.json` of a running stack: no generated request, valid or
not, gets a server error.

Schemathesis (synchronous, `requests`) runs in a worker thread while the stack serves from
this event loop. Provider requests are signed with gateway.auth.sign_request by a `requests`
auth hook, which sees the final body and URL; operator requests carry the bearer token.
Every operation is exercised in positive and negative generation modes, with a bound on
examples and on wall-clock time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from gateway.auth import sign_request
from gateway.config import load_settings
from gateway.harness import running_stack

SIGNER = "hk-801"
QUICK_EXAMPLES = 25
SLOW_EXAMPLES = 400
QUICK_BUDGET_S = 40.0
SLOW_BUDGET_S = 900.0
REQUEST_TIMEOUT_S = 30.0


class SignedAuth(requests.auth.AuthBase):
    """Signs provider requests as `participant`; operator paths get the bearer token."""

    def __init__(self, participant: str, key: Ed25519PrivateKey, operator_token: str) -> None:
        self.participant, self.key, self.operator_token = participant, key, operator_token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        url = str(r.url)
        if urlsplit(url).path.startswith("/v1/operator/"):
            r.headers["Authorization"] = f"Bearer {self.operator_token}"
            return r
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        covered = {k: v for k, v in r.headers.items() if k.lower() == "content-type"}
        r.headers.update(
            sign_request(str(r.method), url, covered, body, self.participant, self.key)
        )
        return r


@dataclass
class Run:
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    out_of_time: int = 0
    failures: list[str] = field(default_factory=list)


def _checker(op: Any, mode: GenerationMode, base_url: str, session: requests.Session, run: Run,
             examples: int, stop_at: float) -> Any:  # fmt: skip
    """A hypothesis test over one operation in one generation mode."""

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])  # fmt: skip
    @given(case=op.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        if time.monotonic() > stop_at:
            run.out_of_time += 1
            return
        resp = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT_S)
        run.statuses[f"{op.label} {mode.value} {resp.status_code}"] += 1
        if resp.status_code >= 500:
            run.server_errors.append(
                f"{op.label} [{mode.value}] {resp.status_code}: path={case.path_parameters}"
                f" query={case.query} body={case.body!r:.300}"
            )

    return check


def fuzz(base_url: str, auth: SignedAuth, examples: int, budget_s: float) -> Run:
    """Every operation, positive then negative, `examples` each, until `budget_s` is spent."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    session = requests.Session()
    session.auth = auth
    run = Run()
    stop_at = time.monotonic() + budget_s
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _checker(op, mode, base_url, session, run, examples, stop_at)()
            except Exception as exc:  # a failure of the run itself, not of the server
                run.failures.append(f"{op.label} [{mode.value}]: {exc!r:.300}")
    return run


async def run_schemathesis(tmp_path: Path, db_dsn: str, examples: int, budget_s: float) -> None:
    settings_ = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, log_level="error")
    async with running_stack(settings_) as stack:
        auth = SignedAuth(SIGNER, stack.keys[SIGNER], stack.operator_token)
        run = await asyncio.to_thread(fuzz, stack.base_url, auth, examples, budget_s)
    by_status = Counter(k.rsplit(" ", 1)[1] for k in run.statuses.elements())
    operations = {k.rsplit(" ", 2)[0] for k in run.statuses}
    print(json.dumps({"requests": sum(run.statuses.values()), "by_status": dict(by_status),
                      "operations": len(operations), "out_of_time": run.out_of_time}))  # fmt: skip
    assert run.failures == [], run.failures
    assert run.server_errors == [], "\n".join(run.server_errors[:20])
    # The run reached every operation, and was signed well enough to get past authentication.
    assert len(operations) >= 10, operations
    assert by_status["401"] == 0, [k for k in run.statuses if k.endswith(" 401")]


async def test_schemathesis_finds_no_server_error(tmp_path: Path, db_dsn: str) -> None:
    await run_schemathesis(tmp_path, db_dsn, QUICK_EXAMPLES, QUICK_BUDGET_S)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_schemathesis_long_run(tmp_path: Path, db_dsn: str) -> None:
    await run_schemathesis(tmp_path, db_dsn, SLOW_EXAMPLES, SLOW_BUDGET_S)


@pytest.mark.parametrize("field_name", ["public_key_ed25519", "name", "status"])
async def test_a_null_field_in_a_participant_patch_is_a_4xx(
    tmp_path: Path, db_dsn: str, field_name: str
) -> None:
    """Found by the run above: an explicit null once reached base64 decoding or a NOT NULL
    column as a 500."""
    import aiohttp

    settings_ = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, log_level="error")
    async with running_stack(settings_) as stack:
        headers = {"Authorization": f"Bearer {stack.operator_token}"}
        async with aiohttp.ClientSession() as s:
            url = f"{stack.base_url}/v1/operator/participants/hk-803"
            async with s.patch(url, json={field_name: None}, headers=headers) as r:
                assert 400 <= r.status < 500, r.status
