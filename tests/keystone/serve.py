"""Serve Keystone's public API with waitress (run by the Keystone virtualenv's python, not the project's).

Usage: serve.py CONFIG_FILE. Prints ``READY <port>`` once listening on a free loopback port; exits when its
stdin closes, so the server never outlives the process that started it.
"""

import os
import sys
import threading

import waitress
from keystone.server.flask import core


def _exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    config = sys.argv.pop(1)  # oslo.config parses sys.argv too
    app = core.initialize_application(name="public", config_files=[config])
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    print(f"READY {server.effective_port}", flush=True)
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
