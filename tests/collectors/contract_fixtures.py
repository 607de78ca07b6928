"""What the contract tests of the built-in collectors share: a closed port, and recording a live run."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cloudmeter.testing import CollectorCassette, Scenario, leaks, recording

if TYPE_CHECKING:
    from vcr.request import Request  # type: ignore[import-untyped]

CASSETTES = Path(__file__).resolve().parent / "cassettes"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: a connection is refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def live_cassette(
    config: pytest.Config,
    name: str,
    scenario: Scenario,
    secrets: Sequence[str],
    hosts: Mapping[str, str],
    edit: Callable[[Request, dict[str, Any]], dict[str, Any]] | None = None,
    *,
    directory: Path = CASSETTES,
    names: Callable[[Request, dict[str, Any]], Mapping[str, str]] | None = None,
    patches: Sequence[tuple[Any, str, type]] = (),
) -> Iterator[CollectorCassette | None]:
    """For a contract class against a real peer: None (no cassette), or, when this run records, the cassette
    ``DIRECTORY/NAME.yaml`` (default ``cassettes/``) being recorded, saved when the class is done; ``names`` and
    ``patches`` as ``CollectorCassette`` takes them."""
    if not recording(config):
        yield None
        return
    path = directory / f"{name}.yaml"
    cassette = CollectorCassette(
        path, record=True, scenario=scenario, secrets=secrets, hosts=hosts, edit=edit, names=names, patches=patches
    )
    yield cassette
    cassette.save()


def replayed(
    name: str,
    secrets: Sequence[str],
    *,
    directory: Path = CASSETTES,
    patches: Sequence[tuple[Any, str, type]] = (),
) -> CollectorCassette:
    """The committed cassette ``DIRECTORY/NAME.yaml`` (default ``cassettes/``), to replay."""
    return CollectorCassette(directory / f"{name}.yaml", record=False, secrets=secrets, patches=patches)


def committed_leaks(name: str, secrets: Sequence[str], *, directory: Path = CASSETTES) -> list[str]:
    """What the committed cassette ``DIRECTORY/NAME.yaml`` (default ``cassettes/``) and its scenario give away of
    ``secrets`` (or of any credential header); fails when they are missing."""
    files = [directory / f"{name}.yaml", directory / f"{name}.scenario.json"]
    assert all(f.exists() for f in files), f"record the cassette first: {files}"
    return [leak for f in files for leak in leaks(f, secrets)]
