"""The `baygate` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"baygate: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _with_conn(settings: Settings, fn: Callable[[Any], Any]) -> Any:
    import asyncpg

    from gateway.db import open_database

    db = await open_database(settings)
    try:
        conn = await asyncpg.connect(db.dsn, timeout=settings.db_connect_timeout_s)
        try:
            return await fn(conn)
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(db.stop)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    settings = _settings()
    if args.no_migrate:
        settings = settings.model_copy(update={"auto_migrate": False})
    serve(settings)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from gateway import migrate

    settings = _settings()

    async def run(conn: Any) -> int:
        if args.action == "upgrade":
            applied = await migrate.upgrade(conn)
            print("\n".join(f"applied {n}" for n in applied) or "up to date")
            return 0
        states = await migrate.status(conn)
        for s in states:
            mark = "CHANGED" if s.changed else ("applied" if s.applied else "pending")
            print(f"{s.migration.version:04d}  {mark:8}  {s.migration.name}")
        return 1 if any(s.changed for s in states) else 0

    try:
        return int(asyncio.run(_with_conn(settings, run)))
    except migrate.MigrationError as exc:
        print(f"baygate db: {exc}", file=sys.stderr)
        return 1


def cmd_participants(args: argparse.Namespace) -> int:
    from gateway import directory, migrate

    settings = _settings()
    if args.action == "load":
        try:
            d = directory.load_file(Path(args.file))
        except directory.DirectoryError as exc:
            for p in exc.problems:
                print(p, file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"baygate participants: {exc}", file=sys.stderr)
            return 1

        async def load(conn: Any) -> dict[str, int]:
            await migrate.upgrade(conn)
            return await directory.apply_directory(conn, d)

        counts = asyncio.run(_with_conn(settings, load))
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        return 0

    async def show(conn: Any) -> list[Any]:
        await migrate.upgrade(conn)
        return await directory.list_participants(conn)

    for r in asyncio.run(_with_conn(settings, show)):
        print(f"{r['id']:12} {r['scheme']:8} {r['clearing_system']:6} {r['clearing_code']:13} "
              f"{r['role']:12} {r['status']:9} {r['name']}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from adapters.cli_support import validate_file

    code, lines = validate_file(args.scheme, Path(args.file).read_bytes())
    print("\n".join(lines))
    return code


def cmd_translate(args: argparse.Namespace) -> int:
    from adapters.cli_support import translate_file

    code, out, lines = translate_file(args.src, args.dst, Path(args.file).read_bytes())
    if code == 0:
        sys.stdout.buffer.write(out)
    else:
        print("\n".join(lines))
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import demo
    from gateway.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log_format, "warning")
    from gateway import eventloop

    return eventloop.run(demo(settings, exit_after=args.exit, messages=args.messages,
                              rate_per_s=args.rate, seed=args.seed, stressed=args.stressed),
                         settings.event_loop)


def cmd_send(args: argparse.Namespace) -> int:
    from gateway.traffic import send_file

    settings = _settings()
    base = args.url or f"http://{settings.host}:{settings.port}"
    code, body = send_file(base, args.participant, args.key, args.scheme, args.file)
    sys.stdout.buffer.write(body)
    if body and not body.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    return code


async def _pool_for(settings: Settings) -> tuple[Any, Any]:
    import asyncpg

    from gateway.db import open_database

    db = await open_database(settings)
    return db, await asyncpg.create_pool(db.dsn, min_size=1, max_size=4)


def cmd_settlement(args: argparse.Namespace) -> int:
    from gateway.settlement_export import verify_settlement_dir
    from gateway.signing_keys import load_or_create_signing_key

    settings = _settings()
    if args.action == "verify":
        from gateway.signing_keys import load_public_key

        key = None
        with contextlib.suppress(Exception):
            key = load_public_key(settings.data_dir)
        problems = verify_settlement_dir(Path(args.target), key)
        for p in problems:
            print(f"{p.code} {p.path}: {p.message}")
        if not problems:
            print(f"OK {args.target}")
        return 1 if problems else 0

    async def run() -> int:
        from tqdm import tqdm

        from gateway import settlement_service

        db, pool = await _pool_for(settings)
        bar = tqdm(unit="entries", desc=f"window {args.target}", disable=not sys.stderr.isatty())

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            result = await settlement_service.export(
                pool, settings.data_dir, load_or_create_signing_key(settings.data_dir), int(args.target),
                out_dir=Path(args.out) if args.out else None, progress=progress)
        except (settlement_service.UnknownWindow, FileExistsError, ValueError) as exc:
            print(f"baygate settlement export: {exc}", file=sys.stderr)
            return 1
        finally:
            bar.close()
            await pool.close()
            await asyncio.to_thread(db.stop)
        print(f"wrote {result.path} ({len(result.manifest.get('files', {}))} files, {result.entries} entries)")
        return 0

    return asyncio.run(run())


def cmd_reconcile(args: argparse.Namespace) -> int:
    from gateway.reconcile import reconcile
    from gateway.settlement_export import default_window_dir

    settings = _settings()
    folder = Path(args.dir) if args.dir else default_window_dir(settings.data_dir, str(args.window))

    async def run(conn: Any) -> list[str]:
        return await reconcile(conn, args.window, folder if folder.exists() else None)

    diffs = asyncio.run(_with_conn(settings, run))
    for d in diffs:
        print(d)
    if not diffs:
        print(f"OK window {args.window} reconciles" + ("" if folder.exists() else " (no settlement files found)"))
    return 1 if diffs else 0


def cmd_audit(args: argparse.Namespace) -> int:
    from gateway import audit
    from gateway.db import open_database

    settings = _settings()

    async def run() -> int:
        db = await open_database(settings)
        try:
            return await audit.verify_cli(db.dsn)
        finally:
            await asyncio.to_thread(db.stop)

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="baygate", description="Greater Bay Area clearing gateway")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("db", help="database migrations")
    s.add_argument("action", choices=["upgrade", "status"])
    s.set_defaults(fn=cmd_db)

    s = sub.add_parser("participants", help="participant directory")
    s.add_argument("action", choices=["load", "list"])
    s.add_argument("file", nargs="?")
    s.set_defaults(fn=cmd_participants)

    s = sub.add_parser("validate", help="validate a scheme message file")
    s.add_argument("--scheme", required=True)
    s.add_argument("file")
    s.set_defaults(fn=cmd_validate)

    s = sub.add_parser("translate", help="translate a message between schemes")
    s.add_argument("--from", dest="src", required=True)
    s.add_argument("--to", dest="dst", required=True)
    s.add_argument("file")
    s.set_defaults(fn=cmd_translate)
    s = sub.add_parser("demo", help="run a simulated business day end to end")
    s.add_argument("--exit", action="store_true", help="stop after the summary; exit 0 only if every check held")
    s.add_argument("--messages", type=int, default=1500, help="messages to send (default 1500)")
    s.add_argument("--rate", type=float, default=150.0, help="messages per second (default 150)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--stressed", action="store_true",
                   help="tight caps: the same traffic rejected, then queued in liquidity-saving mode")
    s.set_defaults(fn=cmd_demo)

    s = sub.add_parser("send", help="sign and submit a native message, print the native answer")
    s.add_argument("--as", dest="participant", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--scheme", required=True)
    s.add_argument("--url", default=None, help="gateway base URL (default from BAYGATE_HOST/PORT)")
    s.add_argument("file")
    s.set_defaults(fn=cmd_send)

    s = sub.add_parser("settlement", help="settlement files of a closed window")
    s.add_argument("action", choices=["export", "verify"])
    s.add_argument("target", help="window id (export) or settlement folder (verify)")
    s.add_argument("--out", default=None, help="export: folder to write (default under the data dir)")
    s.set_defaults(fn=cmd_settlement)

    s = sub.add_parser("reconcile", help="compare ledger, transfers, positions and files of a window")
    s.add_argument("window", type=int)
    s.add_argument("--dir", default=None, help="settlement folder (default under the data dir)")
    s.set_defaults(fn=cmd_reconcile)

    s = sub.add_parser("audit", help="audit journal")
    s.add_argument("action", choices=["verify"])
    s.set_defaults(fn=cmd_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "participants" and args.action == "load" and not args.file:
        print("baygate participants load: FILE is required", file=sys.stderr)
        return 2
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
