"""Recorded interactions (vcrpy cassettes) so a collector's contract runs without its peer.

A contract run against a real peer can record every HTTP interaction the collectors have with it (httpx for
OpenStack, botocore's urllib3 for AWS, pyVmomi's http.client for VMware through ``patches``) into a cassette; a
later run replays them without the peer. Next to the cassette (``NAME.yaml``) a scenario (``NAME.scenario.json``)
keeps what the contract's fixtures were at recording time: the collector's clock, the window, the missing metric
and the retired resources, plus anything else the test needs to build the same collectors again (``extra``).

Recording is asked for with ``--record-cassettes`` or ``CLOUDMETER_RECORD_CASSETTES=1`` (see ``recording``);
the default is to replay, and a replayed request that is not in the cassette fails the test rather than reach
the network.

What is written is redacted before it reaches the disk, and requests are redacted the same way before they are
matched, so a replay matches what was recorded:

- request headers: only those that say what is asked (Content-Type, Accept, X-Amz-Target, Smithy-Protocol) are
  kept; Authorization, X-Auth-Token, X-Amz-Date, X-Amz-Security-Token and the rest are dropped. Of an AWS
  Signature V4 only the access key id is kept (``X-Cassette-Access-Key-Id``, an identifier AWS does not treat
  as secret), so a replay tells a refused key from an accepted one;
- response headers: credentials (X-Subject-Token, Set-Cookie, ...) and noise (Date, Server, request ids) are
  dropped;
- bodies: string values of JSON keys and XML elements named like a credential (password, secret, token,
  SecretAccessKey, SessionToken, ...) become ``<redacted>``, and so does every secret the test names, in each
  form a body or URL may carry it (as is, URL-quoted, JSON-escaped, inside base64);
- the peer's address (``http://127.0.0.1:PORT``) becomes a stable name (``hosts``), so a replay does not depend
  on the port the peer had; the replayed collectors are configured with that name.
- identifiers an answer introduces that are secret or random (a session key, a session's object ids) become the
  stable names a test gives them (``names``), in that answer and in every later request and answer.

``leaks`` lists what in a cassette file would give a secret away; a test runs it on the committed cassettes.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, quote_plus

from cloudmeter.model import METRICS, ResourceRef, Window, as_utc

if TYPE_CHECKING:
    import pytest
    from vcr.cassette import Cassette  # type: ignore[import-untyped]
    from vcr.request import Request  # type: ignore[import-untyped]

#: The command-line option and the environment variable that switch a run from replaying to recording.
RECORD_OPTION: Final = "--record-cassettes"
RECORD_ENV: Final = "CLOUDMETER_RECORD_CASSETTES"
REDACTED: Final = "<redacted>"

#: Request headers kept in a cassette: what a request asks, never how it authenticates.
KEPT_REQUEST_HEADERS: Final = frozenset({"content-type", "accept", "x-amz-target", "smithy-protocol"})
#: The access key id of an AWS Signature V4, kept under this header (a key id is an identifier, not a secret).
ACCESS_KEY_HEADER: Final = "X-Cassette-Access-Key-Id"
#: Response headers dropped: credentials, and what differs on every recording.
DROPPED_RESPONSE_HEADERS: Final = frozenset(
    {
        "authorization",
        "x-auth-token",
        "x-subject-token",
        "x-amz-security-token",
        "set-cookie",
        "date",
        "server",
        "connection",
        "keep-alive",
        "x-amzn-requestid",
        "x-amz-request-id",
        "x-amz-id-2",
        "x-openstack-request-id",
        "openstack-request-id",
        "x-compute-request-id",
    }
)
#: JSON keys and XML elements whose string values are credentials.
_CREDENTIAL_KEY: Final = re.compile(
    r"^(?:password|passwd|secret|.*secret.*|token|.*_token|.*session_?token|secretaccesskey|.*credential.*)$",
    re.IGNORECASE,
)
_CREDENTIAL_XML: Final = re.compile(
    rb"<(SecretAccessKey|SessionToken|Password|Token)>[^<]*</\1>",
    re.IGNORECASE,
)
_SIGV4_KEY: Final = re.compile(r"Credential=([A-Z0-9]{16,128})/")
#: Shortest secret the kit accepts: a shorter one would be found by chance in any text.
MIN_SECRET_LENGTH: Final = 8


def recording(config: pytest.Config) -> bool:
    """Whether this run records cassettes (``--record-cassettes`` or ``CLOUDMETER_RECORD_CASSETTES=1``)."""
    return bool(config.getoption("record_cassettes", default=False)) or os.environ.get(RECORD_ENV, "") not in (
        "",
        "0",
    )


def secret_forms(secret: str) -> set[str]:
    """``secret`` and the ways a message, URL, JSON document or base64 header (``user:secret``) may carry it."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    raw = secret.encode()
    for pad in range(3):  # the base64 characters that depend on the secret alone, whatever precedes it
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        core = encoded[math.ceil(8 * pad / 6) : (8 * (pad + len(raw))) // 6]
        if len(core) >= MIN_SECRET_LENGTH:
            forms.add(core)
    return {form for form in forms if form}


@dataclass(frozen=True)
class Scenario:
    """What a recorded run's fixtures were: the collectors' clock (``now``), the window with samples, the
    resource and metric the source has no data for, the resources it knows were deleted, and ``extra`` values
    the test needs to build the same collectors again (never a secret)."""

    now: datetime
    window: Window
    missing_metric: tuple[ResourceRef, str]
    retired_refs: frozenset[ResourceRef]
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", as_utc(self.now))
        if self.missing_metric[1] not in METRICS:
            raise ValueError(f"missing_metric names {self.missing_metric[1]!r}, which is not one of {METRICS}")

    def to_json(self) -> dict[str, Any]:
        ref, metric = self.missing_metric
        return {
            "now": self.now.isoformat(),
            "window": [self.window.start.isoformat(), self.window.end.isoformat()],
            "missing_metric": [ref.kind, ref.ems_ref, metric],
            "retired_refs": sorted([r.kind, r.ems_ref] for r in self.retired_refs),
            "extra": dict(sorted(self.extra.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scenario:
        kind, ems_ref, metric = data["missing_metric"]
        start, end = data["window"]
        return cls(
            now=datetime.fromisoformat(data["now"]),
            window=Window(datetime.fromisoformat(start), datetime.fromisoformat(end)),
            missing_metric=(ResourceRef(kind, ems_ref), metric),
            retired_refs=frozenset(ResourceRef(k, e) for k, e in data["retired_refs"]),
            extra=dict(data.get("extra", {})),
        )


class Redactor:
    """Rewrites requests and responses as they are recorded and matched (see the module docstring)."""

    def __init__(self, secrets: Iterable[str] = (), hosts: Mapping[str, str] | None = None) -> None:
        short = [s for s in secrets if len(s) < MIN_SECRET_LENGTH]
        if short:
            raise ValueError(f"{len(short)} secret(s) shorter than {MIN_SECRET_LENGTH} characters; use longer ones")
        self._forms = sorted({form for s in secrets for form in secret_forms(s)}, key=len, reverse=True)
        #: A peer's address, not followed by more of a port number (":804" must not rename ":8041").
        self._hosts = [
            (re.compile(re.escape(live.rstrip("/")) + r"(?![0-9])"), name.rstrip("/"))
            for live, name in (hosts or {}).items()
        ]
        self._names: dict[str, str] = {}

    def rename(self, names: Mapping[str, str]) -> None:
        """From now on, write each key of ``names`` (an identifier a recorded answer gave) as its value."""
        self._names.update((old, new) for old, new in names.items() if old)

    def text(self, text: str) -> str:
        """``text`` with every secret form redacted and the peers' addresses renamed."""
        for live, name in self._hosts:
            text = live.sub(name.replace("\\", "\\\\"), text)  # the name as is, not as a template
        for old, new in self._names.items():
            text = text.replace(old, new)
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text

    def body(self, body: bytes | str | None) -> bytes | str | None:
        """A request or response body, redacted; unchanged when nothing in it needs to be."""
        if body is None or isinstance(body, str):
            return None if body is None else self.text(body)
        try:
            text = body.decode()
        except UnicodeDecodeError:  # binary (CBOR, ...): only exact secret bytes can be found
            for form in self._forms:
                body = body.replace(form.encode(), REDACTED.encode())
            return body
        redacted = self.text(text)
        with contextlib.suppress(ValueError):
            document = json.loads(redacted)
            cleaned = _redact_json(document)
            if cleaned != document:
                redacted = json.dumps(cleaned)
        as_bytes = _CREDENTIAL_XML.sub(lambda m: b"<%s>%s</%s>" % (m[1], REDACTED.encode(), m[1]), redacted.encode())
        return body if as_bytes == body else as_bytes

    def request(self, request: Request) -> Request:
        """A copy of ``request`` fit for a cassette (and for matching against one)."""
        request = copy.deepcopy(request)
        kept = {k: self.text(_text(v)) for k, v in request.headers.items() if k.lower() in KEPT_REQUEST_HEADERS}
        if (found := _SIGV4_KEY.search(_header(request, "Authorization"))) is not None:
            kept[ACCESS_KEY_HEADER] = found[1]
        elif key := _header(request, ACCESS_KEY_HEADER):  # redacted already (vcrpy redacts before matching too)
            kept[ACCESS_KEY_HEADER] = key
        request.headers = kept
        request.uri = self.text(request.uri)
        request.body = self.body(request.body)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """A copy of a recorded response (vcrpy's dict) fit for a cassette: decompressed and redacted."""
        from vcr.filters import decode_response  # type: ignore[import-untyped]

        response = decode_response(response)
        headers = {
            name: [self.text(_text(v)) for v in values]
            for name, values in response["headers"].items()
            if name.lower() not in DROPPED_RESPONSE_HEADERS
        }
        body = self.body(response["body"]["string"])
        response["body"]["string"] = body
        for name in list(headers):
            if name.lower() == "content-length":
                headers[name] = [str(len(body or b""))]
        response["headers"] = headers
        return response


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(item, str) and _CREDENTIAL_KEY.match(str(key)) else _redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def _text(value: Any) -> str:
    """A header value as text (botocore sends bytes; a loaded cassette holds lists)."""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return value.decode() if isinstance(value, bytes) else str(value)


def _header(request: Request, name: str) -> str:
    return _text(request.headers.get(name, ""))


def _identity(request: Request) -> tuple[Any, ...]:
    """What tells one recorded request from another (for dropping repeats)."""
    body = request.body
    return (
        request.method,
        request.uri,
        body if isinstance(body, bytes | str | None) else repr(body),
        _header(request, "X-Amz-Target"),
        _header(request, ACCESS_KEY_HEADER),
    )


def aws_target(r1: Request, r2: Request) -> None:
    """vcrpy matcher: the same AWS JSON operation (``X-Amz-Target``)."""
    assert _header(r1, "X-Amz-Target") == _header(r2, "X-Amz-Target"), "X-Amz-Target differs"


def access_key(r1: Request, r2: Request) -> None:
    """vcrpy matcher: signed with the same AWS access key id (or neither signed)."""
    assert _header(r1, ACCESS_KEY_HEADER) == _header(r2, ACCESS_KEY_HEADER), "access key id differs"


class CollectorCassette:
    """One cassette of a contract run: recording from a live peer (``record``) or replaying without it.

    ``playing()`` routes HTTP through the cassette for a block (the contract does it around each test that
    uses ``collector`` or ``bad_credentials``); ``save()`` writes a recording. Identical requests are answered
    with the first recorded answer, so tests may run in any order or alone, and only that answer is saved.
    ``edit(request, response)`` may change an answer as it is saved (e.g. apply a limit the test peer ignores
    and the real source honours); say why where it is used.

    ``names(request, response)`` gives, for an answer being recorded (to ``request``, already redacted), the
    identifiers it introduces that must not be written as they are (a session key) or that differ on every run
    (a session-scoped object id), each with the stable name the cassette gives it in that answer and in every
    later request and answer (see ``Redactor.rename``); a replay then sends the names it was answered with.

    ``patches`` routes clients vcrpy does not patch itself through the cassette too: vcrpy's ``custom_patches``,
    triples ``(module, attribute, vcrpy stub class)``, for a client that imported its connection class by name
    (pyVmomi's ``SoapAdapter.HTTPSConnection``: ``(pyVmomi.SoapAdapter, "HTTPSConnection",
    vcr.stubs.VCRHTTPSConnection)``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        record: bool,
        scenario: Scenario | None = None,
        secrets: Sequence[str] = (),
        hosts: Mapping[str, str] | None = None,
        edit: Callable[[Request, dict[str, Any]], dict[str, Any]] | None = None,
        names: Callable[[Request, dict[str, Any]], Mapping[str, str]] | None = None,
        patches: Sequence[tuple[Any, str, type]] = (),
    ) -> None:
        try:
            from vcr import matchers  # type: ignore[import-untyped]
            from vcr.cassette import Cassette
            from vcr.record_mode import RecordMode  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError("cassettes need vcrpy: pip install 'cloudmeter[testing]'") from exc
        self.path = Path(path)
        self.record = record
        self.scenario_path = self.path.with_name(f"{self.path.stem}.scenario.json")
        if record:
            if scenario is None:
                raise ValueError("recording needs the scenario the fixtures were built from")
            self.path.unlink(missing_ok=True)
            self.scenario = scenario
        else:
            if not self.path.exists() or not self.scenario_path.exists():
                raise FileNotFoundError(
                    f"no cassette {self.path} (and {self.scenario_path.name}); record it against the real peer with "
                    f"{RECORD_OPTION} or {RECORD_ENV}=1"
                )
            self.scenario = Scenario.from_json(json.loads(self.scenario_path.read_text()))
        self.redactor = Redactor(secrets, hosts)
        self._edit = edit
        self._names = names
        self._recorded: Request | None = None  # the request whose answer vcrpy records next
        self._cassette: Cassette = Cassette.load(
            path=str(self.path),
            record_mode=RecordMode.ALL if record else RecordMode.NONE,
            match_on=(
                matchers.method,
                matchers.scheme,
                matchers.host,
                matchers.port,
                matchers.path,
                matchers.query,
                matchers.body,
                aws_target,
                access_key,
            ),
            before_record_request=self._request,
            before_record_response=self._response,
            allow_playback_repeats=True,
            custom_patches=tuple(patches),
        )

    def _request(self, request: Request) -> Request:
        self._recorded = self.redactor.request(request)
        return self._recorded

    def _response(self, response: dict[str, Any]) -> dict[str, Any]:
        """vcrpy redacts a request, then records its answer (``Cassette.append``): ``names`` learns from both."""
        if self._names is not None and self._recorded is not None:
            from vcr.filters import decode_response

            self.redactor.rename(self._names(self._recorded, decode_response(response)))
        return self.redactor.response(response)

    def __len__(self) -> int:
        return len(self._cassette)

    @contextlib.contextmanager
    def playing(self) -> Iterator[None]:
        """Route the HTTP requests of httpx, botocore (and ``patches``) through this cassette while the block
        runs."""
        from vcr.patch import CassettePatcherBuilder  # type: ignore[import-untyped]

        with contextlib.ExitStack() as patches:
            for patcher in CassettePatcherBuilder(self._cassette).build():
                patches.enter_context(patcher)
            yield

    def save(self) -> None:
        """Write what was recorded (and the scenario); nothing while replaying."""
        if not self.record:
            return
        firsts: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        for request, response in self._cassette.data:  # a replay answers each request with its first answer
            if _identity(request) not in firsts:
                edited = response if self._edit is None else self._edit(request, copy.deepcopy(response))
                firsts[_identity(request)] = (request, edited)
        self._cassette.data[:] = firsts.values()
        self._cassette._save(force=True)  # vcrpy saves on leaving use_cassette; this cassette spans many tests
        self.scenario_path.write_text(json.dumps(self.scenario.to_json(), indent=2) + "\n")


#: Header names whose presence in a cassette means a credential was written.
_CREDENTIAL_HEADERS: Final = re.compile(
    r"^\s*-?\s*['\"]?(authorization|x-auth-token|x-subject-token|x-amz-security-token|set-cookie)['\"]?\s*:",
    re.IGNORECASE | re.MULTILINE,
)


def leaks(path: str | Path, secrets: Iterable[str]) -> list[str]:
    """What in the cassette (or scenario) file at ``path`` gives a credential away: each form of each of
    ``secrets`` found, and each credential header kept. Empty when the file is clean."""
    text = Path(path).read_text()
    found = [
        f"{path}: secret #{k} appears as {form!r}"
        for k, secret in enumerate(secrets)
        for form in sorted(secret_forms(secret))
        if form in text
    ]
    found += [f"{path}: header {m[1]!r} kept" for m in _CREDENTIAL_HEADERS.finditer(text)]
    return found
