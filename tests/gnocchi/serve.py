"""Serve Gnocchi's REST API with waitress (run by the Gnocchi virtualenv's python, not the project's).

Usage: serve.py CONFIG_FILE. Prints ``READY <port>`` once listening on a free loopback port; exits when its
stdin closes, so the server never outlives the process that started it.
"""

import os
import sys
import threading

import gnocchi.rest.app
import gnocchi.service
import waitress
from oslo_config import cfg


def _exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    conf = gnocchi.service.prepare_service(args=["--config-file", sys.argv[1]], conf=cfg.ConfigOpts())
    server = waitress.create_server(gnocchi.rest.app.load_app(conf), host="127.0.0.1", port=0, threads=4)
    print(f"READY {server.effective_port}", flush=True)
    watcher = threading.Thread(target=_exit_when_stdin_closes, daemon=True)
    watcher.start()
    server.run()


if __name__ == "__main__":
    main()
