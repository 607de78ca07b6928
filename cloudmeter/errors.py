"""The error tree. Each layer translates its library's errors at its boundary into one of these.

    CloudmeterError
    ├── ConfigError                 bad config file, environment or CLI argument
    ├── CollectorError              a source misbehaved
    │   ├── CollectorAuthError      permanent: credentials rejected
    │   ├── SourceUnavailable       transient: endpoint unreachable or failing
    │   │   └── Throttled           transient: the source asked us to slow down (retry_after)
    │   └── BadPayload              the source answered something we cannot parse
    ├── PayloadError                a pure parser's BadPayload before the collector names the manager
    └── StorageError
        ├── StorageUnavailable      the database cannot be reached or started
        ├── SchemaError             the database schema is missing or newer than this program
        └── StorageMisconfigured    the database refuses what cloudmeter needs until its setup is fixed
                                    (also a ConfigError: exit 2 on the command line)

Messages name what is wrong and how to fix it; secrets never appear in them.
"""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T")


class CloudmeterError(Exception):
    """Root of every error cloudmeter raises on purpose."""


class ConfigError(CloudmeterError):
    """Configuration (file, environment, CLI argument) is invalid."""


class CollectorError(CloudmeterError):
    """A collector could not do its work."""

    def __init__(self, manager: str, message: str) -> None:
        super().__init__(f"manager {manager!r}: {message}")
        self.manager = manager


class CollectorAuthError(CollectorError):
    """The source rejected the credentials: permanent until the manager's config changes."""


class SourceUnavailable(CollectorError):
    """The source could not be reached or failed: transient, retry later."""


class Throttled(SourceUnavailable):
    """The source asked to slow down; ``retry_after`` seconds is its hint."""

    def __init__(self, manager: str, message: str, retry_after: float) -> None:
        super().__init__(manager, message)
        self.retry_after = retry_after


class BadPayload(CollectorError):
    """The source answered with something that does not follow its documented format."""


class PayloadError(CloudmeterError):
    """An answer does not follow its documented format, as a pure parser (which knows no manager) finds it.

    ``where`` locates the value in the answer, e.g. ``Reservations[0].Instances[2].LaunchTime``; the collector
    re-raises it with ``bad_payload``.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")
        self.where = where

    @classmethod
    def unexpected(cls, where: str, value: object, expected: str) -> PayloadError:
        """``where`` holds ``value`` (quoted short) instead of ``expected``."""
        shown = "missing or null" if value is None else repr(value)
        return cls(where, f"is {shown if len(shown) <= 60 else shown[:57] + '...'}, expected {expected}")

    @classmethod
    def expect(cls, value: object, kind: type[_T], where: str, expected: str) -> _T:
        """``value``, which the documented shape says is a ``kind`` (``expected`` in words)."""
        if not isinstance(value, kind):
            raise cls.unexpected(where, value, expected)
        return value

    def bad_payload(self, manager: str, source: str) -> BadPayload:
        """This error as the BadPayload of ``manager``, whose ``source`` (an API call) answered it."""
        return BadPayload(manager, f"{source} answered a malformed result: {self}")


class StorageError(CloudmeterError):
    """The database failed us."""


class StorageUnavailable(StorageError):
    """The database cannot be reached, started or authenticated against."""


class SchemaError(StorageError):
    """The schema is missing or newer than this program knows."""


class StorageMisconfigured(StorageError, ConfigError):
    """The server is up but refuses what cloudmeter needs until someone changes its setup.

    Credentials, privileges, a read-only server, a full disk, an unsupported version, TimescaleDB offered but
    not preloaded: retrying does not help, so it is also a ConfigError (the command line exits 2). ``problem``
    names the condition (``"read-only"``, ``"disk-full"``, ...) for callers and tests.
    """

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
