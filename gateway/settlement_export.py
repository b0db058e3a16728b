"""Writing a closed window's settlement files to disk, signing them, and verifying them later.

Layout of `<dest>/` (by default `$BAYGATE_DATA_DIR/settlements/<window id>/`):

    summary/<CCY>.csv            participants' gross and net totals, with a control row
    pacs009/<CCY>.xml            settlement instructions (pacs.009.001.08)
    details/<participant>.csv    every transfer leg of the participant, person data masked
    camt053/<participant>.<CCY>.xml   statement (camt.053.001.08)
    manifest.json                SHA-256 and size of every file, control totals, signature

Transfer legs come from `rows_for(participant_ids)`, an async iterator of batches of every
committed leg of the window touching those participants (None: all), each once. Each leg is
formatted once and appended to its payer's and payee's files, so every participant's files
are open together; when the descriptor limit cannot hold them all, participants are taken in
groups and the source is asked once per group. Memory holds one batch and a short chunk per
file. Files are created by a thread per folder while the first rows already stream (in a
block group of their own on ext4, see `_spread_subfolders`), hashed by a thread reading back
what was written as it goes, and fsynced by a few threads at the end (see
docs/decisions/0010 for the measured reasons).

Files are written into a hidden sibling folder and renamed into place once the manifest is
signed, so a reader never sees a half-written settlement; an existing destination is refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import queue
import resource
import shutil
import struct
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clearing import settlement_files as sf
from clearing.money import Money
from gateway import signing_keys

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "baygate-settlement-manifest/1"
SIGNING_CONTEXT = b"baygate-settlement-manifest/1\n"  # domain separation for the gateway key
MANIFEST_BYTES_MAX = 64 * 1024 * 1024
BATCH_ROWS_MAX = 100_000
READ_CHUNK_BYTES = 1024 * 1024
SYNC_THREADS = 4
WRITEBACK_BYTES = 256 * 1024
CLOSE_THREADS = 8
FILES_OPEN_MAX = 16_384
FILES_OPEN_MIN = 8
FD_RESERVE = 256  # descriptors left for the database pool, logs and the server

# Every committed transfer leg of the window whose payer or payee is in the set (None: every
# leg), each once, in batches (commit order reads best). Asked once per group of participants:
# usually once, with None.
RowSource = Callable[[frozenset[str] | None], AsyncGenerator[Sequence[sf.Leg], None]]
Progress = Callable[[int, int], None]  # (entries written, entries expected)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    entries: int  # statement entries written: each transfer counts once per side


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a settlement folder cannot be trusted; `path` is relative to the folder."""

    code: str  # manifest | signature | missing | unexpected | hash | size | totals
    path: str
    message: str

    def line(self) -> str:
        return f"{self.code} {self.path or '-'}: {self.message}"


def default_window_dir(data_dir: Path, window_id: str) -> Path:
    if not sf.ID_RE.match(window_id):
        raise sf.SettlementInputError(f"window id {window_id!r} is not file-safe")
    return Path(data_dir) / "settlements" / window_id


class _Out:
    """A file being written in chunks, and its SHA-256. Unbuffered: chunks are already tens
    of kilobytes, and thousands of files are open at once. Not fsynced here: `_sync_files`
    does that for every file at the end.

    With `writeback`, every WRITEBACK_BYTES written are handed to its thread, which reads the
    range back from the page cache into the hash, then hands it to the disk at once
    (posix_fadvise DONTNEED starts writeback of dirty pages; pages under writeback stay
    cached). Left alone, the kernel writes nothing back before 10 % of memory is dirty or
    30 s have passed, so the final fsync waited for the whole window's files (3 s here);
    and hashing there uses the time the formatting waits for PostgreSQL, where hashing
    every file at the end took 0.6-0.8 s more. Without it, chunks are hashed as written."""

    def __init__(
        self,
        root: Path,
        rel: str,
        data: bytes = b"",
        writeback: _Writeback | None = None,
        created_in: str | None = None,
    ) -> None:
        """With `created_in`, the file is created in that folder of `root` and moved to `rel`
        when closed (see _Opener)."""
        self.rel = rel
        path = root / rel
        path.parent.mkdir(exist_ok=True)
        self._moves: tuple[Path, Path] | None = None
        if created_in is not None:
            self._moves = (root / created_in / path.name, path)
            path = self._moves[0]
        self._f = open(path, "xb+", buffering=0)  # read back into the hash
        self.size_bytes = 0
        self.sha256 = hashlib.sha256()
        self._writeback = writeback
        self._handed_bytes = 0 if writeback is not None else -1
        self.write(data)

    def write(self, data: bytes) -> None:
        self._write(data)
        if self._handed_bytes >= 0 and self.size_bytes - self._handed_bytes >= WRITEBACK_BYTES:
            assert self._writeback is not None
            self._writeback.ask(self, self._handed_bytes, self.size_bytes)
            self._handed_bytes = self.size_bytes

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._f.write(view) :]
        self.size_bytes += len(data)
        if self._handed_bytes < 0:
            self.sha256.update(data)

    def read_in(self, start: int, end: int) -> None:
        """Hash bytes start..end back from the page cache (on the writeback thread until it
        drains, then on the closing one); the reads release the GIL, as does hashing."""
        fd = self._f.fileno()
        while start < end:
            data = os.pread(fd, min(end - start, READ_CHUNK_BYTES), start)
            if not data:
                raise OSError(f"{self.rel}: file ends at {start} bytes, {end} were written")
            self.sha256.update(data)
            start += len(data)

    def hand_to_disk(self, start: int, end: int) -> None:
        _fadvise(self._f.fileno(), start, end)

    def close(self, files: dict[str, dict[str, Any]], data: bytes = b"") -> None:
        """Write `data` last and close: the writeback thread has drained by now."""
        self._write(data)
        if self._handed_bytes >= 0 and self.size_bytes > self._handed_bytes:
            self.read_in(self._handed_bytes, self.size_bytes)
            self.hand_to_disk(self._handed_bytes, self.size_bytes)
        self._f.close()
        if self._moves is not None:
            os.rename(*self._moves)
        files[self.rel] = {"sha256": self.sha256.hexdigest(), "size_bytes": self.size_bytes}

    def abandon(self) -> None:
        self._f.close()


_FADVISE = hasattr(os, "posix_fadvise")


def _fadvise(fd: int, start: int, end: int) -> None:
    os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)


class _Writeback:
    """One thread that hashes written ranges and hands them to the disk. The kernel does the
    block allocation of delayed-allocation file systems while it starts writeback, inside
    the call: on this thread it runs beside the formatting, not in it. Files stay open until
    `drain` returns, which raises what a read-back raised."""

    def __init__(self) -> None:
        self._asks: queue.SimpleQueue[tuple[_Out, int, int] | None] = queue.SimpleQueue()
        self._failure: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="settlement-writeback")
        self._thread.start()

    def ask(self, out: _Out, start: int, end: int) -> None:
        self._asks.put((out, start, end))

    def _run(self) -> None:
        while (ask := self._asks.get()) is not None:
            out, start, end = ask
            if self._failure is not None:
                continue
            try:
                out.read_in(start, end)
            except OSError as exc:
                self._failure = exc
                continue
            with contextlib.suppress(OSError):
                out.hand_to_disk(start, end)

    def drain(self) -> None:
        self._asks.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure


async def export_window(
    window: sf.Window,
    rows_for: RowSource,
    dest: Path,
    *,
    key: Ed25519PrivateKey,
    masking: sf.Masking | None = None,
    audit_chain_head: str | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] | None = None,
    fsync: bool = True,
    settlements_root: bool = False,
) -> ExportResult:
    """Write, hash and sign every settlement file of `window` under `dest` (which must not exist).

    With `settlements_root`, `dest`'s parent is the gateway's own folder of window folders,
    which is marked for the file system as holding unrelated folders (`_spread_subfolders`);
    a folder a caller named is left as it is.

    Raises SettlementInputError, leaving nothing behind, when the clearing output is
    inconsistent or the streamed rows disagree with the declared totals. Formatting a batch
    holds the event loop for a few milliseconds: run long exports off a latency-sensitive loop."""
    sf.check_window(window)
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists; settlement files are never overwritten")
    masking = masking or sf.Masking()
    generated_at = (now or _utc_now)()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if settlements_root:
        _spread_subfolders(dest.parent)
    tmp = dest.parent / f".{dest.name}.partial-{os.urandom(4).hex()}"
    tmp.mkdir(mode=0o750)
    files: dict[str, dict[str, Any]] = {}
    try:
        for ccy in window.currencies:
            _Out(tmp, f"summary/{ccy}.csv", sf.summary_csv(window, ccy)).close(files)
            if (pacs := sf.pacs009(window, ccy, generated_at)) is not None:
                _Out(tmp, f"pacs009/{ccy}.xml", pacs).close(files)
        entries = await _write_participant_files(
            window, rows_for, tmp, files, masking, generated_at, progress, fsync
        )
        await asyncio.to_thread(_sync_files, tmp, files, fsync)
        manifest = _manifest(window, files, masking, generated_at, audit_chain_head)
        manifest["signature"] = _sign(manifest, key)
        await asyncio.to_thread(_publish, tmp, dest, manifest, fsync)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(path=dest, manifest=manifest, entries=entries)


# linux/fs.h: FS_IOC_GETFLAGS, FS_IOC_SETFLAGS (an int, whatever the macros' type says) and
# FS_TOPDIR_FL, `chattr +T`.
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


def _spread_subfolders(folder: Path) -> None:
    """Mark the settlements folder as a top of unrelated hierarchies (`chattr +T`), so ext4
    places each window's folder in a block group of its own choosing rather than its
    parent's. Without a journal ext4 skips inodes freed in the last minute, one by one from
    the start of the group: 4,006 files took 1.4-1.9 s to create beside fresh deletions
    against 0.1 s in a fresh group (docs/decisions/0010). A hint only: other file systems,
    or a folder the gateway does not own, leave it as it is."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            (flags,) = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, b"\0" * 4))
            if not flags & _FS_TOPDIR_FL:
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_TOPDIR_FL))
        finally:
            os.close(fd)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _publish(tmp: Path, dest: Path, manifest: dict[str, Any], fsync: bool) -> None:
    """Write the signed manifest, then move the finished folder into place in one rename."""
    with open(tmp / MANIFEST_NAME, "xb") as f:
        f.write(json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n")
        if fsync:
            os.fsync(f.fileno())
    _fsync_dirs(tmp, fsync)
    os.rename(tmp, dest)
    _fsync_dirs(dest.parent, fsync, recursive=False)


async def _write_participant_files(
    window: sf.Window,
    rows_for: RowSource,
    root: Path,
    files: dict[str, dict[str, Any]],
    masking: sf.Masking,
    generated_at: datetime,
    progress: Progress | None,
    writeback: bool,
) -> int:
    expected = sum(t.debit_count + t.credit_count for t in window.totals)
    done = 0
    groups = _participant_groups(window, _files_open_budget())
    for group in groups:
        stream = sf.WindowStream(window, group, masking, generated_at)
        with _Opener(root, stream.heads(), writeback) as outs:
            rows = rows_for(stream.members if len(groups) > 1 else None)
            async with contextlib.aclosing(rows):  # the query ends here, even on an error
                async for batch in rows:
                    if len(batch) > BATCH_ROWS_MAX:
                        raise sf.SettlementInputError(f"batch above {BATCH_ROWS_MAX} rows")
                    for rel in stream.feed(batch):
                        outs.get(rel).write(stream.take(rel).encode())
                    if progress is not None:
                        progress(done + stream.entries, expected)
            if problems := stream.mismatches():
                raise sf.SettlementInputError("; ".join(problems[:20]))
            await asyncio.to_thread(outs.close_all, stream, files)
        done += stream.entries
    return done


class _Opener:
    """A group's files, created with their opening text while the rows already stream:
    creating thousands of files waits on the file system journal (from well under a second
    to a few seconds here, depending on other writers), and the first chunk of a file is only
    due after some thousands of legs. One thread per folder creates them: creating a file
    holds its folder's lock, and more threads only spun on that lock (a tenth of the
    export's CPU time in perf, on cores PostgreSQL and the formatting need). Statements get a
    second thread and folder (see below). Closing, which takes no folder lock, uses
    CLOSE_THREADS."""

    def __init__(self, root: Path, heads: dict[str, str], writeback: bool) -> None:
        self._pool = ThreadPoolExecutor(max_workers=CLOSE_THREADS)
        self._creators: dict[str, ThreadPoolExecutor] = {}
        self._writeback = _Writeback() if writeback and _FADVISE else None
        self._pending: dict[str, Future[_Out]] = {}
        self._root = root
        for i, (rel, h) in enumerate(heads.items()):
            folder = rel.rpartition("/")[0]
            # Statements (three quarters of the files) are created by two threads, half of
            # them in a scratch folder of their own, moved in place when closed.
            created_in = f".{folder}-created" if folder == "camt053" and i % 2 else None
            key = created_in or folder
            creator = self._creators.get(key)
            if creator is None:
                if created_in is not None:
                    (root / created_in).mkdir()
                creator = self._creators[key] = ThreadPoolExecutor(max_workers=1)
            self._pending[rel] = creator.submit(
                _Out, root, rel, h.encode(), self._writeback, created_in
            )
        self._outs: dict[str, _Out] = {}

    def get(self, rel: str) -> _Out:
        out = self._outs.get(rel)
        if out is None:
            out = self._outs[rel] = self._pending.pop(rel).result()
        return out

    def close_all(self, stream: sf.WindowStream, files: dict[str, dict[str, Any]]) -> None:
        """Write each file's last text and close it, on the opening threads: thousands of
        closes each hand the rest of a file to the disk, and the loop has nothing else to do
        (it waits, so the stream is touched by these threads alone, one file each)."""
        rels = stream.files()
        for rel in rels:
            self.get(rel)
        self._drain()

        def one(rel: str) -> None:
            self._outs[rel].close(files, stream.tail(rel).encode())

        list(self._pool.map(one, rels))
        self._outs.clear()
        for key in self._creators:
            if key.startswith("."):
                (self._root / key).rmdir()

    def __enter__(self) -> _Opener:
        return self

    def _drain(self) -> None:
        if self._writeback is not None:
            self._writeback.drain()
            self._writeback = None

    def __exit__(self, *exc: object) -> None:
        """Close whatever is still open (an export that failed half-way)."""
        self._drain()
        for future in self._pending.values():
            future.cancel()
        for creator in self._creators.values():
            creator.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        for future in self._pending.values():
            if not future.cancelled() and future.exception() is None:
                future.result().abandon()
        for out in self._outs.values():
            out.abandon()


def _participant_groups(window: sf.Window, files_max: int) -> list[list[str]]:
    """Participants with transfers, in groups whose files can all be open at once: one pass
    over the source per group, a single pass whenever the descriptor limit allows."""
    files: dict[str, int] = {}
    for t in window.totals:
        if t.debit_count + t.credit_count:
            files[t.participant_id] = files.get(t.participant_id, 1) + 1
    groups: list[list[str]] = [[]]
    used = 0
    for pid in sorted(files):
        if groups[-1] and used + files[pid] > files_max:
            groups.append([])
            used = 0
        groups[-1].append(pid)
        used += files[pid]
    return [g for g in groups if g]


def _files_open_budget() -> int:
    """How many files an export may hold open: up to FILES_OPEN_MAX, within RLIMIT_NOFILE,
    whose soft limit is raised towards the hard one first (as the Go runtime does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FILES_OPEN_MAX + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < want:
        raised = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY:
        return FILES_OPEN_MAX
    return max(FILES_OPEN_MIN, min(FILES_OPEN_MAX, soft - FD_RESERVE))


def _sync_files(root: Path, files: dict[str, dict[str, Any]], fsync: bool) -> None:
    """Check each file's size on disk against what was written and hashed, and fsync it
    when asked, on a few threads: most pages are already on their way to the disk."""

    def one(rel: str) -> None:
        fd = os.open(root / rel, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size != files[rel]["size_bytes"]:
                raise OSError(f"{rel}: {size} bytes on disk, {files[rel]['size_bytes']} written")
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    with ThreadPoolExecutor(max_workers=SYNC_THREADS) as pool:
        list(pool.map(one, files))


def _manifest(
    window: sf.Window,
    files: dict[str, dict[str, Any]],
    masking: sf.Masking,
    generated_at: datetime,
    audit_chain_head: str | None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "window_id": window.window_id,
        "opened_at": sf.iso(window.opened_at),
        "closed_at": sf.iso(window.closed_at),
        "settlement_date": window.value_date.isoformat(),
        "generated_at": sf.iso(generated_at),
        "masking": {
            "names": masking.names,
            "accounts": masking.accounts,
            "keep_chars": masking.keep_chars,
        },
        "control_totals": sf.control_totals(window),
        "files": dict(sorted(files.items())),
    }
    if audit_chain_head is not None:
        manifest["audit_chain_head"] = audit_chain_head
    return manifest


def signing_bytes(manifest: dict[str, Any]) -> bytes:
    """What the signature covers: the manifest without its signature, as canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return SIGNING_CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _sign(manifest: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, str]:
    public = key.public_key()
    return {
        "algorithm": "ed25519",
        "key_id": signing_keys.key_id(public),
        "public_key": signing_keys.public_key_b64(public),
        "value": base64.b64encode(key.sign(signing_bytes(manifest))).decode(),
    }


def _fsync_dirs(root: Path, fsync: bool, recursive: bool = True) -> None:
    if not fsync:
        return
    folders = [root, *(p for p in root.iterdir() if p.is_dir())] if recursive else [root]
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- verification


def verify_settlement_dir(
    path: Path, public_key: Ed25519PublicKey | None = None, *, deep: bool = True
) -> list[Problem]:
    """Every reason not to trust the folder; empty when all is well.

    Checks the manifest signature (against `public_key`, the gateway's key; without it only
    against the key the manifest names, which proves integrity, not origin), each file's size
    and SHA-256, files missing or added, and with `deep` recomputes the control totals: each
    summary against its control row and the manifest, each detail CSV against the summary."""
    root = Path(path)
    manifest, problems = _read_manifest(root)
    if manifest is None:
        return problems
    problems += _check_signature(manifest, public_key)
    listed: dict[str, dict[str, Any]] = manifest.get("files", {})
    problems += _check_files(root, listed)
    if deep:
        problems += _check_totals(root, manifest, listed)
    return problems


def _read_manifest(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    path = root / MANIFEST_NAME
    try:
        with open(path, "rb") as f:
            data = f.read(MANIFEST_BYTES_MAX + 1)
    except OSError as exc:
        return None, [Problem("missing", MANIFEST_NAME, f"cannot read: {exc.strerror}")]
    if len(data) > MANIFEST_BYTES_MAX:
        return None, [Problem("manifest", MANIFEST_NAME, "too large")]
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        return None, [Problem("manifest", MANIFEST_NAME, f"not JSON: {exc}")]
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or not isinstance(manifest.get("files"), dict)
        or not isinstance(manifest.get("signature"), dict)
        or not all(isinstance(v, dict) for v in manifest["files"].values())
    ):
        return None, [Problem("manifest", MANIFEST_NAME, f"not a {MANIFEST_FORMAT} manifest")]
    return manifest, []


def _check_signature(
    manifest: dict[str, Any], public_key: Ed25519PublicKey | None
) -> list[Problem]:
    sig = manifest["signature"]
    try:
        named = signing_keys.public_key_from_b64(str(sig.get("public_key", "")))
        value = base64.b64decode(str(sig.get("value", "")), validate=True)
    except (ValueError, signing_keys.SigningKeyError) as exc:
        return [Problem("signature", MANIFEST_NAME, f"unreadable signature: {exc}")]
    out: list[Problem] = []
    key = public_key or named
    if public_key is not None and signing_keys.public_key_raw(named) != signing_keys.public_key_raw(
        public_key
    ):
        out.append(Problem("signature", MANIFEST_NAME, "signed by another key than the gateway's"))
    try:
        key.verify(value, signing_bytes(manifest))
    except InvalidSignature:
        out.append(Problem("signature", MANIFEST_NAME, "signature does not match the manifest"))
    return out


def _safe_rel(rel: str) -> bool:
    p = PurePosixPath(rel)
    return (
        bool(rel)
        and "\\" not in rel
        and not p.is_absolute()
        and all(part not in ("", ".", "..") for part in rel.split("/"))
        and rel != MANIFEST_NAME
    )


def _check_files(root: Path, listed: dict[str, dict[str, Any]]) -> list[Problem]:
    out: list[Problem] = []
    for rel, meta in listed.items():
        if not _safe_rel(rel):
            out.append(Problem("manifest", rel, "unsafe path in manifest"))
            continue
        path = root / rel
        if path.is_symlink() or not path.is_file():
            out.append(Problem("missing", rel, "listed in the manifest but not a regular file"))
            continue
        size, digest = _hash_file(path)
        if size != meta.get("size_bytes"):
            out.append(
                Problem("size", rel, f"{size} bytes, manifest says {meta.get('size_bytes')}")
            )
        if digest != meta.get("sha256"):
            out.append(Problem("hash", rel, "SHA-256 differs from the manifest"))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink() or (
                name in filenames and rel not in listed and rel != MANIFEST_NAME
            ):
                out.append(Problem("unexpected", rel, "not listed in the manifest"))
    return out


def _hash_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK_BYTES):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _check_totals(
    root: Path, manifest: dict[str, Any], listed: dict[str, dict[str, Any]]
) -> list[Problem]:
    out: list[Problem] = []
    declared = manifest.get("control_totals")
    if not isinstance(declared, dict):
        return [Problem("manifest", MANIFEST_NAME, "control totals missing")]
    positions: dict[str, dict[str, sf.PositionTotal]] = {}
    for ccy, totals in sorted(declared.items()):
        rel = f"summary/{ccy}.csv"
        if rel not in listed or not (root / rel).is_file():
            out.append(Problem("missing", rel, f"no summary for {ccy}"))
            continue
        check = sf.read_summary_csv((root / rel).read_bytes())
        out += [Problem("totals", rel, m) for m in check.problems]
        out += _compare_control(rel, ccy, check, totals)
        for pid, t in check.positions.items():
            positions.setdefault(pid, {})[ccy] = t
        out += _check_instructions(root, ccy, check, listed)
    for pid, by_ccy in sorted(positions.items()):
        rel = f"details/{pid}.csv"
        if not any(t.debit_count + t.credit_count for t in by_ccy.values()):
            continue
        if rel not in listed or not (root / rel).is_file():
            out.append(Problem("missing", rel, "no detail file for a participant with transfers"))
            continue
        with open(root / rel, encoding="utf-8", newline="") as f:
            sums, problems = sf.read_detail_totals(f)
        out += [Problem("totals", rel, m) for m in problems]
        for ccy, t in sorted(by_ccy.items()):
            want = [t.gross_debits.minor, t.gross_credits.minor, t.debit_count, t.credit_count]
            if sums.pop(ccy, [0, 0, 0, 0]) != want:
                out.append(Problem("totals", rel, f"{ccy} sums differ from the summary"))
        out += [Problem("totals", rel, f"{ccy} rows absent from the summary") for ccy in sums]
    return out


def _check_instructions(
    root: Path, ccy: str, check: sf.SummaryCheck, listed: dict[str, dict[str, Any]]
) -> list[Problem]:
    """The pacs.009 moves exactly the summary's net positions."""
    rel = f"pacs009/{ccy}.xml"
    moving = [t for t in check.positions.values() if t.net.minor]
    if rel not in listed or not (root / rel).is_file():
        return [Problem("missing", rel, "net positions without instructions")] if moving else []
    count, total, problems = sf.read_pacs009((root / rel).read_bytes(), ccy)
    out = [Problem("totals", rel, m) for m in problems]
    if (count, total) != (len(moving), sum(abs(t.net.minor) for t in moving)):
        out.append(Problem("totals", rel, "instructions differ from the summary's net positions"))
    return out


def _compare_control(rel: str, ccy: str, check: sf.SummaryCheck, totals: Any) -> list[Problem]:
    if not isinstance(totals, dict):
        return [Problem("manifest", MANIFEST_NAME, f"control totals of {ccy} unreadable")]
    ts = list(check.positions.values())
    recomputed = {
        "participants": len(ts),
        "gross_debits": sum(t.gross_debits.minor for t in ts),
        "gross_credits": sum(t.gross_credits.minor for t in ts),
        "debit_count": sum(t.debit_count for t in ts),
        "credit_count": sum(t.credit_count for t in ts),
    }
    out = []
    for name, got in recomputed.items():
        want = totals.get(name)
        with contextlib.suppress(ValueError, TypeError, ArithmeticError):
            if isinstance(want, str):
                want = Money.parse(want, ccy).minor
        if want != got:
            out.append(Problem("totals", rel, f"{name} differs from the manifest's control total"))
    return out
