"""``cloudmeter serve``: the HTTP API and web page with uvicorn, in this process, until SIGTERM/SIGINT."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudmeter.cli.common import ConfigOption, console, handled_errors, open_database, read_settings

DEFAULT_PORT = 8080


def register(app: typer.Typer) -> None:
    """Put ``serve`` on the root app."""
    app.command("serve")(serve)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: [api] host, 127.0.0.1: this machine only).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help=f"Port (default: [api] port, else {DEFAULT_PORT}).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI docs at /api/v1/docs), the web page and /metrics.

    Requests need a token (`cloudmeter tokens create NAME --role viewer`). It listens on 127.0.0.1 unless told
    otherwise: to reach it from elsewhere, put a reverse proxy with TLS in front (README: HTTP API).
    """
    from cloudmeter.api import server
    from cloudmeter.api.app import create_app

    settings = read_settings(config)
    chosen_host = host or settings.api.host
    chosen_port = port if port is not None else settings.api.port if settings.api.port is not None else DEFAULT_PORT
    with handled_errors():
        sock = server.listen(chosen_host, chosen_port)
    with open_database(settings) as db:
        db.migrate()
        where = server.url(sock)
        scope = "this machine only (the default)" if chosen_host == "127.0.0.1" else f"{chosen_host}: put TLS in front"
        console.print(
            f"cloudmeter at {where}/ (web page)\n"
            f"  API {where}/api/v1, docs {where}/api/v1/docs\n"
            f"  listening on {scope}; Ctrl-C stops it",
            highlight=False,
            soft_wrap=True,
        )
        server.run(create_app(settings, db), sock)
    console.print("stopped", highlight=False)
