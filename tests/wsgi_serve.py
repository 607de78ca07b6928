"""Serve Gnocchi's or Keystone's API with waitress, run by that server's own virtualenv (not the project's).

Usage: wsgi_serve.py gnocchi|keystone CONFIG_FILE. Prints ``READY <port>`` once listening on a free loopback
port; exits when its stdin closes, so the server never outlives the process that started it.
"""

import os
import sys
import threading


def gnocchi_app(config: str) -> object:
    import gnocchi.rest.app
    import gnocchi.service
    from oslo_config import cfg

    conf = gnocchi.service.prepare_service(args=["--config-file", config], conf=cfg.ConfigOpts())
    return gnocchi.rest.app.load_app(conf)


def keystone_app(config: str) -> object:
    from keystone.server.flask import core

    return core.initialize_application(name="public", config_files=[config])


def _exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    import waitress

    name, config = sys.argv[1], sys.argv[2]
    del sys.argv[1:]  # oslo.config parses sys.argv too
    app = {"gnocchi": gnocchi_app, "keystone": keystone_app}[name](config)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    print(f"READY {server.effective_port}", flush=True)
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
