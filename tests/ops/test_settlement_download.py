"""Settlement file downloads over real HTTP, after real traffic and a real window close.

Providers see and fetch only their own files; operators fetch every file, and what they
fetch verifies against the gateway's key exactly like the folder on disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gateway.client import BaygateClient
from gateway.harness import Stack
from gateway.settlement_export import verify_settlement_dir
from gateway.settlement_service import wait_for_files
from gateway.signing_keys import load_or_create_signing_key
from tests.ops.live import live_stack, operator, send_traffic, wait_quiet


@dataclass
class Closed:
    stack: Stack
    window: int
    folder: Path
    manifest: dict

    def client(self, pid: str) -> BaygateClient:
        return BaygateClient(self.stack.base_url, pid, self.stack.keys[pid])

    def owned(self, pid: str) -> set[str]:
        """The participant's files, read off the manifest by name."""
        return {
            rel for rel in self.manifest["files"]
            if rel == f"details/{pid}.csv"
            or (rel.startswith(f"camt053/{pid}.") and rel.count(".") == pid.count(".") + 2)
        }  # fmt: skip

    def with_files(self) -> list[str]:
        return sorted(pid for pid in self.stack.keys if self.owned(pid))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def closed(
    pg_dsn: str, template_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Closed]:
    async with live_stack(pg_dsn, tmp_path_factory.mktemp("gateway")) as stack:
        summary = await send_traffic(stack, 40, seed=3, shares={})
        assert summary.http.get(200) == summary.messages
        await wait_quiet(stack)
        status, _, body = await operator(stack, "POST", "/v1/operator/windows/close")
        assert status == 200, body
        window = json.loads(body)["window_id"]
        folder = await wait_for_files(stack.settings.data_dir, window, timeout_s=60)
        manifest = json.loads((folder / "manifest.json").read_bytes())
        yield Closed(stack, window, folder, manifest)


async def test_each_participant_lists_exactly_its_own_files(closed: Closed) -> None:
    files = closed.manifest["files"]
    manifest_sha = hashlib.sha256((closed.folder / "manifest.json").read_bytes()).hexdigest()
    seen: list[str] = []
    for pid in sorted(closed.stack.keys):
        async with closed.client(pid) as c:
            r = await c.get_json(f"/v1/settlements/{closed.window}/files")
        assert r.status == 200, r.body
        listed = {f["path"]: f for f in r.body["files"]}
        assert set(listed) == closed.owned(pid)
        for rel, f in listed.items():
            assert (f["sha256"], f["size_bytes"]) == (
                files[rel]["sha256"],
                files[rel]["size_bytes"],
            )
            assert f["url"] == f"/v1/settlements/{closed.window}/files/{rel}"
        assert r.body["participant_id"] == pid
        assert r.body["window_id"] == str(closed.window)
        assert r.body["signature"] == closed.manifest["signature"]
        assert r.body["manifest_sha256"] == manifest_sha
        seen += listed
    assert len(closed.with_files()) >= 4  # traffic reached several participants
    per_participant = {rel for rel in files if rel.startswith(("details/", "camt053/"))}
    assert sorted(seen) == sorted(per_participant)  # each file has exactly one owner


async def test_a_participant_downloads_its_files_intact(closed: Closed) -> None:
    pid = closed.with_files()[0]
    async with closed.client(pid) as c:
        listing = (await c.get_json(f"/v1/settlements/{closed.window}/files")).body
        for f in listing["files"]:
            r = await c.request("GET", f["url"])
            assert r.status == 200
            assert hashlib.sha256(r.body).hexdigest() == f["sha256"]
            assert len(r.body) == f["size_bytes"]
            assert r.body == (closed.folder / f["path"]).read_bytes()
            digest = base64.b64decode(
                r.headers["Repr-Digest"].removeprefix("sha-256=:").rstrip(":")
            )
            assert digest.hex() == f["sha256"]
            kind = "text/csv" if f["path"].endswith(".csv") else "application/xml"
            assert r.headers["Content-Type"].startswith(kind)
            assert "Content-Encoding" not in r.headers
        details = next(f for f in listing["files"] if f["path"].startswith("details/"))
        part = await c.request("GET", details["url"], headers={"Range": "bytes=5-24"})
    assert part.status == 206
    assert part.body == (closed.folder / details["path"]).read_bytes()[5:25]


async def test_other_participants_files_and_shared_files_are_not_found(closed: Closed) -> None:
    me, other = closed.with_files()[:2]
    refused = [*sorted(closed.owned(other)), "manifest.json", "no/such.csv",
               *sorted(rel for rel in closed.manifest["files"] if rel.startswith(("summary/", "pacs009/")))]  # fmt: skip
    async with closed.client(me) as c:
        for rel in refused:
            r = await c.request("GET", f"/v1/settlements/{closed.window}/files/{rel}")
            assert r.status == 404, rel
            assert r.headers["Content-Type"].startswith("application/problem+json")


async def test_path_traversal_never_reaches_a_file(closed: Closed) -> None:
    me, other = closed.with_files()[:2]
    key_pem = closed.stack.settings.data_dir / "keys" / "gateway_ed25519.pem"
    secret = key_pem.read_bytes()
    escapes = [
        f"details%2F..%2F..%2F..%2Fkeys%2F{key_pem.name}",
        f"..%2F..%2Fkeys%2F{key_pem.name}",
        f"%2e%2e/%2e%2e/keys/{key_pem.name}",
        f"%2F{str(key_pem).lstrip('/').replace('/', '%2F')}",
        f"details%5C..%5C..%5Ckeys%5C{key_pem.name}",
        f"details/{me}.csv%00.xml",
    ]
    into_others = [f"details/../details/{other}.csv", f"details/%2e%2e/details/{other}.csv"]
    async with closed.client(me) as c:
        for path in escapes + into_others:
            r = await c.request("GET", f"/v1/settlements/{closed.window}/files/{path}")
            assert r.status in (400, 401, 404), (path, r.status)
            assert secret[:40] not in r.body
    for path in escapes:
        status, _, body = await operator(
            closed.stack, "GET", f"/v1/operator/settlements/windows/{closed.window}/files/{path}"
        )
        assert status in (400, 404), (path, status)
        assert secret[:40] not in body


async def test_operator_fetches_every_file_and_the_copy_verifies(closed: Closed, tmp_path) -> None:
    base = f"/v1/operator/settlements/windows/{closed.window}/files"
    status, _, body = await operator(closed.stack, "GET", base)
    assert status == 200
    listing = json.loads(body)
    paths = [f["path"] for f in listing["files"]]
    assert sorted(paths) == sorted(["manifest.json", *closed.manifest["files"]])
    for f in listing["files"]:
        status, _, data = await operator(closed.stack, "GET", f"{base}/{f['path']}")
        assert status == 200, f["path"]
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        (tmp_path / f["path"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f["path"]).write_bytes(data)
    gateway_key = load_or_create_signing_key(closed.stack.settings.data_dir).public_key()
    assert verify_settlement_dir(tmp_path, gateway_key) == []


async def test_unknown_windows_and_missing_credentials(closed: Closed) -> None:
    pid = closed.with_files()[0]
    async with closed.client(pid) as c:
        for window in (closed.window + 1, 999_999, "abc", "0", "-1", "1e3"):
            r = await c.request("GET", f"/v1/settlements/{window}/files")
            assert r.status == 404, window
    for path in (f"/v1/operator/settlements/windows/{closed.window + 1}/files",
                 f"/v1/operator/settlements/windows/{closed.window}/files/details/nobody.csv"):  # fmt: skip
        assert (await operator(closed.stack, "GET", path))[0] == 404
    async with aiohttp.ClientSession() as s:
        url = closed.stack.base_url
        async with s.get(f"{url}/v1/settlements/{closed.window}/files") as r:
            assert r.status == 401
        async with s.get(f"{url}/v1/operator/settlements/windows/{closed.window}/files") as r:
            assert r.status == 401


async def test_files_planted_beside_the_export_are_never_served(closed: Closed) -> None:
    pid = closed.with_files()[0]
    own = closed.folder / f"details/{pid}.csv"
    planted = [own.with_name(own.name + ".gz"), closed.folder / "details" / "planted.csv"]
    for p in planted:
        p.write_bytes(b"not listed in the manifest")
    try:
        async with closed.client(pid) as c:
            r = await c.request("GET", f"/v1/settlements/{closed.window}/files/details/{pid}.csv",
                                headers={"Accept-Encoding": "gzip, br"})  # fmt: skip
        assert r.status == 200
        assert r.body == own.read_bytes()
        assert "Content-Encoding" not in r.headers
        base = f"/v1/operator/settlements/windows/{closed.window}/files"
        assert (await operator(closed.stack, "GET", f"{base}/details/planted.csv"))[0] == 404
        _, _, body = await operator(closed.stack, "GET", base)
        assert "details/planted.csv" not in [f["path"] for f in json.loads(body)["files"]]
    finally:
        for p in planted:
            p.unlink()


async def test_a_file_that_no_longer_matches_its_manifest_is_refused(closed: Closed) -> None:
    pid = closed.with_files()[0]
    own = closed.folder / f"details/{pid}.csv"
    original = own.read_bytes()
    own.write_bytes(original + b"tampered\n")
    try:
        async with closed.client(pid) as c:
            r = await c.request("GET", f"/v1/settlements/{closed.window}/files/details/{pid}.csv")
        assert r.status == 500
        assert b"tampered" not in r.body
    finally:
        own.write_bytes(original)
