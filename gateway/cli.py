"""The `baygate` command line."""

from __future__ import annotations

import argparse
import asyncio
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "participants" and args.action == "load" and not args.file:
        print("baygate participants load: FILE is required", file=sys.stderr)
        return 2
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
