"""``cloudmeter collectors new``: a third-party collector package, rendered from the templates in ``template/``.

The templates are package data (``*.tmpl``, so neither ruff, mypy nor pytest reads them as cloudmeter's own code)
filled in with ``string.Template``: ``$name`` (the kind), ``$Name`` (its class-name form), ``$package``,
``$distribution``, ``$env_var`` and ``$cloudmeter_requirement``. ``template/package/`` becomes the package
``cloudmeter_NAME/``. Rendering is pure (name -> {relative path: text}); the command writes the files.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from cloudmeter.errors import ConfigError

NAME: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
_SUFFIX: Final = ".tmpl"
#: Template paths renamed on the way out (a dotfile would be skipped by some packaging tools).
_RENAMED: Final = {"gitignore": ".gitignore"}


@dataclass(frozen=True)
class Names:
    """What the templates call the new collector."""

    name: str  # the kind, as in kind = "acme"
    Name: str  # class names: AcmeConfig, AcmeCollector
    package: str  # cloudmeter_acme
    distribution: str  # cloudmeter-acme
    env_var: str  # ACME_TOKEN
    #: The cloudmeter versions it works with: this one's release series (PyPI's "cloudmeter" 0.5 is another
    #: project, which an open ">=" would let pip install in its place).
    cloudmeter_requirement: str


def names(name: str) -> Names:
    """The names of the collector of kind ``name`` (checked with ``check_name`` first)."""
    try:
        floor = version("cloudmeter")
    except PackageNotFoundError:  # running from a source tree that was never installed
        floor = "0.1.0"
    return Names(
        name=name,
        Name="".join(part.capitalize() for part in name.split("_")),
        package=f"cloudmeter_{name}",
        distribution=f"cloudmeter-{name.replace('_', '-')}",
        env_var=f"{name.upper()}_TOKEN",
        cloudmeter_requirement=release_series(floor),
    )


def release_series(current: str) -> str:
    """The requirement on cloudmeter's release series of version ``current``: ``>=0.1.0,<0.2`` for 0.1.0 (before
    1.0 a minor release may break), ``>=1.4.2,<2`` from 1.0 on."""
    major, minor = (int(part) for part in re.findall(r"\d+", current)[:2])
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={current},<{upper}"


def check_name(name: str, installed: Collection[str]) -> None:
    """A ConfigError naming the fix unless ``name`` can be a new kind: a lowercase identifier not installed yet."""
    if not NAME.match(name):
        raise ConfigError(
            f"collector name {name!r} is not a lowercase identifier ([a-z][a-z0-9_]*); use e.g. {_suggestion(name)!r}"
        )
    if name in installed:
        raise ConfigError(f"kind {name!r} is installed already (cloudmeter collectors list); pick another name")


def check_output(output: Path) -> None:
    """A ConfigError unless ``output`` is missing or an empty directory (nothing is ever overwritten)."""
    if output.is_dir() and any(output.iterdir()):
        raise ConfigError(f"{output} exists and is not empty; remove it or give another --output")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output} is a file; give another --output")


def render(name: str) -> dict[str, str]:
    """Every file of the package for kind ``name``: relative path -> text."""
    fill = asdict(names(name))
    files = {}
    for path, template in _templates(resources.files("cloudmeter.collectors") / "template", ()):
        parts = [_RENAMED.get(part, part) for part in path]
        if parts[0] == "package":
            parts[0] = fill["package"]
        files["/".join(parts)] = string.Template(template.read_text(encoding="utf-8")).substitute(fill)
    files[f"{fill['package']}/py.typed"] = ""
    return dict(sorted(files.items()))


def write(files: dict[str, str], output: Path) -> list[Path]:
    """Write ``files`` under ``output`` (created); the paths written."""
    written = []
    for relative, text in files.items():
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _templates(folder: Traversable, parents: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda each: each.name):
        if entry.is_dir():
            yield from _templates(entry, (*parents, entry.name))
        elif entry.name.endswith(_SUFFIX):
            yield (*parents, entry.name.removesuffix(_SUFFIX)), entry


def _suggestion(name: str) -> str:
    """``name`` made a lowercase identifier: ``My-Cloud`` -> ``my_cloud``."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    return cleaned if NAME.match(cleaned) else "acme"
