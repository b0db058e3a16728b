"""Settlement file downloads: a provider fetches its own files, an operator every file.

Files are those `settlement_export` published under `$BAYGATE_DATA_DIR/settlements/<window>/`
after a close. Only paths the window's signed manifest lists are ever served: a request
path is looked up in that list, never joined to a folder as given, so `..`, absolute paths,
backslashes, symlinks and files added beside the export are refused by construction.

- GET /v1/settlements/{window}/files (signed): the caller's own files,
  `details/<pid>.csv` and `camt053/<pid>.<CCY>.xml`, with SHA-256 and size from the
  manifest and the manifest's signature details.
- GET /v1/settlements/{window}/files/{path} (signed): one of those files; another
  participant's file answers 404, exactly as a file that does not exist.
- GET /v1/operator/settlements/windows/{window}/files[/{path}] (operator token): every file,
  `manifest.json` and the summaries and settlement instructions included.

Files are streamed from disk (`web.FileResponse`, ranges honoured) with a `Repr-Digest`
header (RFC 9530) carrying the manifest's SHA-256, so a client can check what it received.
Parsed manifests are cached: a published folder never changes (exports refuse to overwrite).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import stat
from collections import OrderedDict
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway.api import PARTICIPANT
from gateway.app import SETTINGS, problem
from gateway.logging import get_logger
from gateway.settlement_export import MANIFEST_BYTES_MAX, MANIFEST_FORMAT, MANIFEST_NAME

WINDOW_RE = re.compile(r"[1-9][0-9]{0,17}")
FILE_PATH_CHARS_MAX = 200
MANIFEST_CACHE_MAX = 8
CHUNK_BYTES = 256 * 1024
CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".xml": "application/xml",
    ".json": "application/json",
}
_log = get_logger("baygate.api_files")


class SettlementFileOut(BaseModel):
    path: str
    sha256: str
    size_bytes: int
    url: str


class ManifestSignatureOut(BaseModel):
    algorithm: str
    key_id: str
    public_key: str
    value: str


class SettlementFilesOut(BaseModel):
    window_id: str
    opened_at: str
    closed_at: str
    settlement_date: str
    generated_at: str
    participant_id: str | None = None  # the caller, on the provider listing
    files: list[SettlementFileOut]
    manifest_sha256: str
    signature: ManifestSignatureOut


class _Manifest:
    """A published window's manifest: its parsed body, its own digest, its folder."""

    def __init__(self, folder: Path, data: bytes) -> None:
        self.folder = folder
        self.body: dict[str, Any] = json.loads(data)
        self.size_bytes = len(data)
        self.sha256 = hashlib.sha256(data).hexdigest()
        files = self.body.get("files")
        if (
            self.body.get("format") != MANIFEST_FORMAT
            or not isinstance(files, dict)
            or not isinstance(self.body.get("signature"), dict)
        ):
            raise ValueError(f"{folder / MANIFEST_NAME} is not a {MANIFEST_FORMAT} manifest")
        self.files: dict[str, dict[str, Any]] = files

    def entry(self, rel: str) -> dict[str, Any] | None:
        if rel == MANIFEST_NAME:
            return {"sha256": self.sha256, "size_bytes": self.size_bytes}
        return self.files.get(rel)


_CACHE: OrderedDict[tuple[str, int, int], _Manifest] = OrderedDict()


def _read_manifest(folder: Path) -> _Manifest | None:
    path = folder / MANIFEST_NAME
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    key = (str(folder), st.st_ino, st.st_mtime_ns)
    if (hit := _CACHE.get(key)) is not None:
        _CACHE.move_to_end(key)
        return hit
    if st.st_size > MANIFEST_BYTES_MAX:
        raise ValueError(f"{path} is above {MANIFEST_BYTES_MAX} bytes")
    with open(path, "rb") as f:
        manifest = _Manifest(folder, f.read(MANIFEST_BYTES_MAX + 1))
    _CACHE[key] = manifest
    while len(_CACHE) > MANIFEST_CACHE_MAX:
        _CACHE.popitem(last=False)
    return manifest


async def _manifest(request: web.Request) -> _Manifest | web.Response:
    window = request.match_info["window"]
    if not WINDOW_RE.fullmatch(window):
        return problem(404, "Not Found", "window ids are positive integers")
    folder = request.app[SETTINGS].data_dir / "settlements" / window
    try:
        manifest = await asyncio.to_thread(_read_manifest, folder)
    except (OSError, ValueError) as exc:
        _log.error("settlement_manifest_unreadable", window_id=window, error=str(exc)[:200])
        return problem(
            500, "Internal Server Error", f"the manifest of window {window} is unreadable"
        )
    if manifest is None:
        return problem(
            404,
            "Not Found",
            f"no settlement files for window {window}: not closed, or still being written",
        )
    return manifest


def own_files(manifest: _Manifest, participant_id: str) -> list[str]:
    """The participant's detail file and statements, as the manifest lists them."""
    pattern = re.compile(rf"camt053/{re.escape(participant_id)}\.[A-Z]{{3}}\.xml")
    details = f"details/{participant_id}.csv"
    return sorted(rel for rel in manifest.files if rel == details or pattern.fullmatch(rel))


def _listing(request: web.Request, m: _Manifest, paths: list[str], pid: str | None) -> web.Response:
    base = request.path.rstrip("/")
    out = SettlementFilesOut(
        window_id=str(m.body.get("window_id", "")),
        opened_at=str(m.body.get("opened_at", "")),
        closed_at=str(m.body.get("closed_at", "")),
        settlement_date=str(m.body.get("settlement_date", "")),
        generated_at=str(m.body.get("generated_at", "")),
        participant_id=pid,
        files=[
            SettlementFileOut(
                path=rel,
                sha256=str(e["sha256"]),
                size_bytes=int(e["size_bytes"]),
                url=f"{base}/{rel}",
            )
            for rel in paths
            if (e := m.entry(rel)) is not None
        ],
        manifest_sha256=m.sha256,
        signature=ManifestSignatureOut.model_validate(m.body["signature"]),
    )
    return web.json_response(out.model_dump(exclude_none=True))


class _ListedFileResponse(web.FileResponse):
    """Sends the file itself, never a pre-compressed sibling (`<file>.gz`, `<file>.br`) that
    aiohttp would pick for a client accepting that encoding: such a file is not listed."""

    def _get_file_path_stat_encoding(
        self, accept_encoding: str
    ) -> tuple[Path | None, os.stat_result, str | None]:
        return super()._get_file_path_stat_encoding("")


def _listed_file_ok(m: _Manifest, rel: str, size_bytes: int) -> bool:
    """A regular file inside the window folder, no symlink on the way, of the listed size."""
    path = m.folder / rel
    try:
        inside = path.resolve().is_relative_to(m.folder.resolve()) and ".." not in Path(rel).parts
        st = os.lstat(path)
    except OSError:
        return False
    return inside and stat.S_ISREG(st.st_mode) and st.st_size == size_bytes


def _serve(m: _Manifest, rel: str) -> web.StreamResponse:
    """Stream one listed file, after checking it is the regular file the manifest lists."""
    entry = m.entry(rel)
    assert entry is not None
    path = m.folder / rel
    ok = _listed_file_ok(m, rel, int(entry["size_bytes"]))
    if not ok:
        _log.error("settlement_file_mismatch", path=str(path))
        return problem(500, "Internal Server Error", f"{rel} does not match its manifest")
    digest = base64.b64encode(bytes.fromhex(str(entry["sha256"]))).decode()
    suffix = Path(rel).suffix
    name = f"window-{m.body.get('window_id', '')}-{rel.replace('/', '-')}"
    headers = {
        "Content-Type": CONTENT_TYPES.get(suffix, "application/octet-stream"),
        "Content-Disposition": f'attachment; filename="{name}"',
        "Repr-Digest": f"sha-256=:{digest}:",
        "Cache-Control": "private, no-store",
    }
    return _ListedFileResponse(path, chunk_size=CHUNK_BYTES, headers=headers)


def _requested(request: web.Request) -> str | None:
    rel = request.match_info["path"]
    return rel if 0 < len(rel) <= FILE_PATH_CHARS_MAX else None


async def provider_files(request: web.Request) -> web.StreamResponse:
    m = await _manifest(request)
    if isinstance(m, web.Response):
        return m
    pid = request[PARTICIPANT].id
    return _listing(request, m, own_files(m, pid), pid)


async def provider_file(request: web.Request) -> web.StreamResponse:
    m = await _manifest(request)
    if isinstance(m, web.Response):
        return m
    rel = _requested(request)
    if rel is None or rel not in own_files(m, request[PARTICIPANT].id):
        return problem(404, "Not Found", "no such settlement file of yours in this window")
    return _serve(m, rel)


async def operator_files(request: web.Request) -> web.StreamResponse:
    m = await _manifest(request)
    if isinstance(m, web.Response):
        return m
    return _listing(request, m, [MANIFEST_NAME, *sorted(m.files)], None)


async def operator_file(request: web.Request) -> web.StreamResponse:
    m = await _manifest(request)
    if isinstance(m, web.Response):
        return m
    rel = _requested(request)
    if rel is None or m.entry(rel) is None:
        return problem(404, "Not Found", "no such settlement file in this window")
    return _serve(m, rel)


def register(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/settlements/{window}/files", provider_files)
    r.add_get("/v1/settlements/{window}/files/{path:.+}", provider_file)
    r.add_get("/v1/operator/settlements/windows/{window}/files", operator_files)
    r.add_get("/v1/operator/settlements/windows/{window}/files/{path:.+}", operator_file)
