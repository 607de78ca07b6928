"""Shared fixtures live in pytest plugins that start real servers once per session."""

pytest_plugins = ["tests.fix_db", "tests.fix_timescale", "tests.fix_gnocchi", "tests.fix_rabbitmq"]
