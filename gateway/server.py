"""`baygate serve`: run the app until SIGTERM/SIGINT, then drain within a bounded time."""

from __future__ import annotations

import socket

from gateway import eventloop, gctune
from gateway.app import create_app
from gateway.config import Settings
from gateway.logging import configure_logging, get_logger


def serve(settings: Settings) -> None:
    from aiohttp import web

    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("baygate.server")
    app = create_app(settings)

    async def tune_gc(_: web.Application) -> None:  # once start-up has built what it keeps
        gctune.tune(settings.gc_gen0_allocations)

    app.on_startup.append(tune_gc)
    own = _own_socket(settings.host, settings.process_port) if settings.process_port else None
    log.info("starting", host=settings.host, port=settings.port, reuse_port=settings.reuse_port,
             process_port=settings.process_port or None, data_dir=str(settings.data_dir))
    # run_app turns SIGTERM/SIGINT into a graceful exit: stop accepting, wait up to
    # shutdown_timeout for in-flight requests, then run cleanup contexts (pool, database).
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_drain_s,
        print=None,
        access_log=None,
        handle_signals=True,
        reuse_port=settings.reuse_port or None,
        sock=own,
        loop=eventloop.factory(settings.event_loop)(),
    )
    log.info("stopped")


def _own_socket(host: str, port: int) -> socket.socket:
    """A listening socket on this process's own port (`process_port`), not shared."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock
