"""The HTTP API (FastAPI on uvicorn) and the web page, on the same report functions as the CLI.

``app.create_app(settings)`` builds the ASGI app: ``/api/v1/...`` (``v1``), ``/metrics``, the web page (``web``).
``auth`` holds the bearer tokens' dependencies. Kept empty so that importing a submodule imports nothing else.
"""
