"""The collector protocol every source implements (built-in or third-party).

Discovery (``inventory``) and measurement (``capture``) are separate; neither writes to storage. A collector
kind declares its configuration as a pydantic model (``config_model``), built from a ``[managers.NAME]`` table.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from cloudmeter.errors import PayloadError
from cloudmeter.model import Event, Inventory, ResourceRef, SampleBatch, Window


def resolve_env_reference(value: Any) -> Any:
    """Replace ``env:VARNAME`` with that variable's value, so secrets can stay out of config files."""
    if isinstance(value, str) and value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in os.environ:
            raise ValueError(f"refers to environment variable {name}, which is not set; export it")
        return os.environ[name]
    return value


@contextmanager
def payload_errors(manager: str, call: str) -> Iterator[None]:
    """A pure parser's PayloadError about ``call``'s answer, raised as ``manager``'s BadPayload."""
    try:
        yield
    except PayloadError as exc:
        raise exc.bad_payload(manager, call) from exc


#: A secret field: given in clear or as ``env:VARNAME``; never printed (pydantic masks SecretStr).
Secret = Annotated[SecretStr, BeforeValidator(resolve_env_reference)]


class ManagerConfig(BaseModel):
    """Fields every manager has; each kind extends it with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    enabled: bool = Field(True, description="whether the daemon runs this manager (managers enable|disable)")

    def public_fields(self) -> dict[str, Any]:
        """The fields that may be stored and shown: everything but secrets, as JSON-ready values."""
        dumped = self.model_dump(mode="json")
        return {key: value for key, value in dumped.items() if not isinstance(getattr(self, key), SecretStr)}


@runtime_checkable
class Collector(Protocol):
    """One configured connection to a provider."""

    kind: ClassVar[str]
    config_model: ClassVar[type[ManagerConfig]]

    name: str

    @property
    def retention_s(self) -> int | None:
        """How far back from now the source keeps the samples of live series, in seconds (bounds gap recovery;
        a class attribute will do); None = unbounded. May ask the source."""

    def verify(self) -> None:
        """One cheap authenticated call; raise CollectorAuthError or SourceUnavailable on failure."""

    def inventory(self) -> Inventory:
        """Everything the source has now (VMs, hosts, clusters, ...), with placement history where known."""

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Samples with timestamps in ``window``, in batches."""


#: Where a catcher hands each batch of events: it returns once the batch and its effects are committed, and
#: raises if they are not (the catcher then acknowledges nothing, so the source delivers them again).
Deliver = Callable[[list[Event]], None]


class EventSource(Protocol):
    """A manager's stream of events (Nova's notifications on RabbitMQ, vCenter's event history)."""

    def catch(self, deliver: Deliver, stop: threading.Event, resume_after: str | None) -> None:
        """Connect, then hand events to ``deliver`` in batches until ``stop`` is set.

        A batch is acknowledged at the source only after ``deliver`` returns. ``resume_after`` is the
        ``message_id`` of the newest event stored (a source that can replay resumes after it). Raise
        SourceUnavailable when the connection fails or drops; the caller reconnects with back-off.
        """


@runtime_checkable
class CatchesEvents(Protocol):
    """A collector whose manager can also stream events."""

    def events(self) -> EventSource | None:
        """This manager's event source, or None when its configuration names none (e.g. no ``amqp_url``)."""

    def inventory_of(self, refs: list[ResourceRef]) -> Inventory:
        """A targeted refresh: just these resources as the source sees them now (and their parents), for the
        events the handler could not resolve. A resource the source no longer has is left out."""
