"""``cloudmeter collectors ...``: the installed collector kinds, and a new one's package to start from.

Kinds are found through the ``cloudmeter.collectors`` entry points, the built-in ones included; ``list`` imports
each kind on its own, so one that fails to load is listed with the reason and the others still are.
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
import types
from dataclasses import asdict, dataclass, field
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python
from rich.markup import escape

from cloudmeter.cli.common import console, handled_errors
from cloudmeter.cli.output import JsonOption
from cloudmeter.collectors import scaffold
from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import collector_class, collector_kinds
from cloudmeter.errors import ConfigError

collectors_app = typer.Typer(help="Collector kinds: the installed ones, and a new one to write.", no_args_is_help=True)

#: What each generated file is, for the list ``collectors new`` prints (``{package}`` etc.: ``scaffold.Names``).
_WRITTEN = {
    "pyproject.toml": "the package {distribution} and its entry point",
    "README.md": "what to do next",
    "{package}/config.py": "the [managers.NAME] table: url, token, ...",
    "{package}/api.py": "the HTTP calls (an example API: replace it)",
    "{package}/parse.py": "parsing the answers: A STUB to implement",
    "{package}/collector.py": "verify, inventory, capture: api, then parse",
    "tests/example_payloads.json": "the example API's answers",
    "tests/stub_server.py": "a local HTTP server serving them",
    "tests/test_parse.py": "what parse.py must make of them",
    "tests/test_contract.py": "cloudmeter's contract for every collector",
}
#: Type names as users read them (pydantic's AwareDatetime is an ISO 8601 time with an offset).
_TYPE_NAMES = {"AwareDatetime": "datetime", "NaiveDatetime": "datetime"}


@dataclass(frozen=True)
class ConfigField:
    """One field of a kind's config model, as ``collectors list`` shows it."""

    name: str
    type: str
    default: Any  # JSON-ready; None when required (or when the default is None)
    required: bool
    secret: bool
    description: str | None


@dataclass(frozen=True)
class Kind:
    """An installed collector kind: where it comes from and its config fields, or why it does not load."""

    kind: str
    package: str | None
    version: str | None
    target: str
    fields: list[ConfigField] = field(default_factory=list)
    error: str | None = None


def installed_kinds() -> list[Kind]:
    """Every installed kind by name, each imported on its own."""
    return [_kind(name, entry) for name, entry in sorted(collector_kinds().items())]


def _kind(name: str, entry: EntryPoint) -> Kind:
    dist = entry.dist
    found = Kind(name, dist.name if dist else None, dist.version if dist else None, entry.value)
    try:
        model = collector_class(name).config_model
    except ConfigError as exc:  # its module or class is missing
        return _broken(found, str(exc))
    except Exception as exc:  # a third party's module may raise anything on import: list it, don't crash
        return _broken(found, f"{entry.value} raised {type(exc).__name__} on import: {exc}")
    if not (isinstance(model, type) and issubclass(model, ManagerConfig)):
        return _broken(found, f"{entry.value}.config_model is not a ManagerConfig subclass; fix its package")
    return Kind(**{**asdict(found), "fields": config_fields(model)})


def _broken(found: Kind, reason: str) -> Kind:
    line = " ".join(reason.split())
    return Kind(**{**asdict(found), "error": line if len(line) <= 300 else line[:299] + "…"})


def config_fields(model: type[BaseModel]) -> list[ConfigField]:
    """The fields of ``model`` but ``kind`` (the kind's name itself), in the order it defines them."""
    return [_field(name, info) for name, info in model.model_fields.items() if name != "kind"]


def _field(name: str, info: FieldInfo) -> ConfigField:
    required = info.is_required()
    default = None
    if not required:
        try:
            default = to_jsonable_python(info.get_default(call_default_factory=True))
        except Exception:  # a factory that needs the other fields' values
            default = None
    if default is PydanticUndefined:
        default = None
    annotation = info.annotation
    return ConfigField(name, _type_label(annotation), default, required, _is_secret(annotation), info.description)


def _type_label(annotation: Any) -> str:
    """``annotation`` as a user reads it: ``str``, ``int | None``, ``keystone|basic``, ``secret``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_label(args[0])
    if annotation is SecretStr:
        return "secret"
    if origin is Literal:
        return "|".join(str(arg) for arg in args)
    if origin in (Union, types.UnionType):
        shown = [_type_label(arg) for arg in args if arg is not type(None)]
        return " | ".join(shown + (["None"] if type(None) in args else []))
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_label(arg) for arg in args)}]"
    if isinstance(annotation, type):
        return _TYPE_NAMES.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(arg) for arg in get_args(annotation))


@collectors_app.command("list")
def collectors_list(as_json: JsonOption = False) -> None:
    """Every installed collector kind: its package, version, class and config fields (a kind that does not load
    is listed with the reason)."""
    kinds = installed_kinds()
    if as_json:
        typer.echo(json.dumps([asdict(kind) for kind in kinds]))
        return
    for index, kind in enumerate(kinds):
        if index:
            console.print()
        package = f"{kind.package} {kind.version}" if kind.package else "unknown package"
        console.print(f"[bold]{escape(kind.kind)}[/] ({escape(package)}): {escape(kind.target)}", highlight=False)
        if kind.error is not None:
            console.print(f"  [red]does not load:[/] {escape(kind.error)}", highlight=False)
        elif kind.fields:
            _print_fields(kind.fields)
    if not kinds:
        console.print("no collector kinds are installed (is cloudmeter installed with pip?)")


def _print_fields(fields: list[ConfigField]) -> None:
    """A kind's fields as ``--help`` lists options: name, type, default or ``required``; the description under it,
    wrapped to the terminal."""
    width = max(len(each.name) for each in fields)
    for each in fields:
        default = "" if each.default is None else f" = {json.dumps(each.default)}"
        line = f"  {each.name:<{width}}  {each.type}{', required' if each.required else default}"
        console.print(escape(line), highlight=False, overflow="fold")
        for text in textwrap.wrap(each.description or "", width=max(console.width - 6, 30)):
            console.print(f"      {escape(text)}", highlight=False, overflow="fold")


@collectors_app.command("new")
def collectors_new(
    name: Annotated[str, typer.Argument(help="The new kind: a lowercase identifier, e.g. acme.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory to create (default: ./cloudmeter-NAME).")
    ] = None,
) -> None:
    """Write a pip-installable collector package for kind NAME: config, API client, parser stub, tests on the
    contract every collector meets. Its tests fail until you implement its parser."""
    with handled_errors():
        scaffold.check_name(name, collector_kinds())
        target = output if output is not None else Path(f"cloudmeter-{name}")
        scaffold.check_output(target)
        files = scaffold.render(name)
        scaffold.write(files, target)
    names = scaffold.names(name)
    console.print(f"wrote {target}/:", markup=False, highlight=False)
    width = max(len(path) for path in files)
    for path in files:
        what = _WRITTEN.get(path.replace(names.package, "{package}", 1), "").format(**asdict(names))
        lines = textwrap.wrap(what, width=max(console.width - width - 4, 20)) or [""]
        console.print(f"  {path:<{width}}  {lines[0]}".rstrip(), markup=False, highlight=False)
        for more in lines[1:]:
            console.print(f"  {'':<{width}}  {more}", markup=False, highlight=False)
    python = shlex.quote(sys.executable)
    console.print(
        "\nA starting point, not a working collector: its tests fail until you implement\n"
        f"{names.package}/parse.py. Next steps: install it into the environment this\n"
        f"cloudmeter runs from, see kind {name} listed, and run its tests:\n"
        f"  cd {shlex.quote(str(target))}\n"
        f"  {python} -m pip install -e '.[test]'\n"
        "  cloudmeter collectors list\n"
        f"  {python} -m pytest\n"
        "README.md says how to replace the example API with your source's, and use it.",
        markup=False,
        highlight=False,
    )
