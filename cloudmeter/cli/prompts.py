"""The questions ``managers add`` asks in a terminal, drawn from the kind's config model (ManageIQ's
``params_for_create``).

``questions(model)`` reads a pydantic config model into what to ask, in the model's field order: each field's
description, its type with the bounds, its default, the choices of a Literal or enum, and whether it is a secret.
Tables (dicts, nested models, lists) are not asked; ``kind`` and ``enabled`` belong to every manager and are
set by ``--kind`` and ``managers enable|disable``. ``answer_error`` checks one answer against the whole model, so
the reason a field validator gives is the reason shown.

``ask`` puts the questions with rich.prompt. A secret is asked as the name of the environment variable that holds
it and stored only as ``env:VARNAME``; when that variable is not set here, its value is asked hidden and kept in
memory only, to verify with. Ctrl-C raises KeyboardInterrupt and end of input EOFError, for the caller to abort.
"""

from __future__ import annotations

import os
import re
import signal
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, NaiveDatetime, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm, InvalidResponse, PromptBase
from rich.text import Text

from cloudmeter.collectors.base import ManagerConfig

#: What an answer of ``-`` means for an optional field: leave it empty (None).
CLEAR: Final = "-"
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIMES: Final = (datetime, AwareDatetime, NaiveDatetime)


@dataclass(frozen=True)
class Question:
    """One field to ask for."""

    name: str
    description: str
    type_label: str  # e.g. "integer, 1 to 1000"
    default: str | None = None  # as one would type it; None: no default (required, or empty when optional)
    choices: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()  # the model's value of each choice
    optional: bool = False  # may be left empty (None)
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.optional

    def value(self, text: str) -> Any:
        """The answer ``text`` as the model takes it (a choice's own value: ``1`` for a ``Literal[1, 2]``)."""
        return dict(zip(self.choices, self.values, strict=True)).get(text, text)


def questions(model: type[BaseModel]) -> tuple[list[Question], list[str]]:
    """The questions for ``model``'s fields in the order it defines them, and the fields not asked (tables)."""
    asked: list[Question] = []
    skipped: list[str] = []
    for name, info in model.model_fields.items():
        if name in ManagerConfig.model_fields:
            continue
        question = _question(name, info)
        if question is None:
            skipped.append(name)
        else:
            asked.append(question)
    return asked, skipped


def secret_fields(model: type[BaseModel]) -> list[str]:
    """The fields of ``model`` that hold a secret (given in clear or as ``env:VARNAME``)."""
    return [name for name, info in model.model_fields.items() if _is_secret(_unwrapped(info)[0])]


def _unwrapped(info: FieldInfo) -> tuple[Any, bool, list[Any]]:
    """A field's type without ``| None`` and ``Annotated``; whether it may be None; its constraints."""
    annotation: Any = info.annotation
    metadata = list(info.metadata)
    optional = False
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007 (a runtime union of types)
        optional = True
    if get_origin(annotation) is Annotated:
        annotation, *more = get_args(annotation)
        metadata += more
    return annotation, optional, metadata


def _is_secret(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, SecretStr)


def _question(name: str, info: FieldInfo) -> Question | None:
    annotation, optional, metadata = _unwrapped(info)
    choices: tuple[Any, ...] = ()
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        label = "one of " + ", ".join(str(choice) for choice in choices)
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = tuple(member.value for member in annotation)
        label = "one of " + ", ".join(str(choice) for choice in choices)
    elif annotation is bool:
        choices, label = (True, False), "yes or no"
    elif annotation is int:
        label = "integer" + _bounds(metadata)
    elif annotation is float:
        label = "number" + _bounds(metadata)
    elif annotation is str:
        label = "text" + _text_rules(metadata)
    elif annotation in _TIMES:
        label = "date and time, ISO 8601" + (" with an offset" if annotation is AwareDatetime else "")
    elif annotation is date:
        label = "date, ISO 8601"
    elif _is_secret(annotation):
        label = "secret, kept in an environment variable"
    else:  # dicts, lists, nested models, unions
        return None
    default = None if info.default in (PydanticUndefined, None) else _text(info.default)
    return Question(
        name=name,
        description=info.description or "",
        type_label=label + ("; - for none" if optional and default is not None else ""),
        default=default,
        choices=tuple(_text(choice) for choice in choices),
        values=choices,
        optional=optional,
        secret=label.startswith("secret"),
    )


def _bounds(metadata: list[Any]) -> str:
    low = next((f">= {m.ge}" for m in metadata if getattr(m, "ge", None) is not None), None)
    low = low or next((f"> {m.gt}" for m in metadata if getattr(m, "gt", None) is not None), None)
    high = next((f"<= {m.le}" for m in metadata if getattr(m, "le", None) is not None), None)
    high = high or next((f"< {m.lt}" for m in metadata if getattr(m, "lt", None) is not None), None)
    if low and high and low.startswith(">=") and high.startswith("<="):
        return f", {low.removeprefix('>= ')} to {high.removeprefix('<= ')}"
    return ", " + " and ".join(bound for bound in (low, high) if bound) if low or high else ""


def _text_rules(metadata: list[Any]) -> str:
    rules = ["not empty" for m in metadata if getattr(m, "min_length", None) == 1]
    rules += [f"at least {m.min_length} characters" for m in metadata if (getattr(m, "min_length", None) or 0) > 1]
    rules += [f"matching {m.pattern}" for m in metadata if getattr(m, "pattern", None)]
    return "".join(f", {rule}" for rule in rules)


def _text(value: Any) -> str:
    """``value`` as one would type it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def answer_error(model: type[BaseModel], table: Mapping[str, Any], name: str) -> str | None:
    """Why field ``name`` of ``table`` is not valid for ``model`` (one line), or None; the other fields' errors
    (those not asked yet) and the whole model's are not its."""
    try:
        model.model_validate(dict(table))
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            if err["loc"][:1] == (name,):
                return _reason(err["msg"], err["loc"][1:])
    return None


def reasons(exc: ValidationError) -> str:
    """Why a table is not valid, in one line (never quoting the input: it may hold a secret)."""
    return "; ".join(_reason(err["msg"], err["loc"]) for err in exc.errors(include_input=False, include_url=False))


def _reason(message: str, loc: tuple[int | str, ...]) -> str:
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message


@dataclass
class Answers:
    """What was answered: the table to store (``kind`` and the fields answered; secrets as ``env:VARNAME``), and
    the hidden values typed for variables not set here (in memory only, to verify with)."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    typed: dict[str, str] = field(default_factory=dict)

    def table(self, name: str | None = None, value: Any = None) -> dict[str, Any]:
        """The table to store, with field ``name`` set to ``value`` (None: left out) when given."""
        table = {"kind": self.kind, **self.fields}
        if name is not None:
            table.pop(name, None)
            if value is not None:
                table[name] = value
        return table

    def resolved(self, table: Mapping[str, Any]) -> dict[str, Any]:
        """``table`` with each ``env:VARNAME`` whose value was typed here replaced by that value (the others are
        read from the environment by the model)."""
        return {key: self._secret(value) for key, value in table.items()}

    def _secret(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("env:") and value.removeprefix("env:") in self.typed:
            return SecretStr(self.typed[value.removeprefix("env:")])
        return value


class FieldPrompt(PromptBase[str]):
    """One field's prompt: its name, the choices, then in parentheses the current value (``none``, ``required``);
    Enter keeps that value. Each answer goes through ``check``, which returns why it is wrong (re-asked) or None."""

    def __init__(
        self,
        label: str,
        choices: tuple[str, ...],
        current: str,
        check: Callable[[str], str | None],
        *,
        console: Console,
    ) -> None:
        super().__init__(Text(label, style="prompt"), console=console)
        self._choices = choices
        self._current = current
        self._check = check

    def make_prompt(self, default: Any) -> Text:
        prompt = self.prompt.copy()
        prompt.end = ""
        if self._choices:
            prompt.append(f" [{'/'.join(self._choices)}]", "prompt.choices")
        prompt.append(f" ({self._current})", "prompt.default")
        prompt.append(": ")
        return prompt

    def process_response(self, value: str) -> str:
        answer = value.strip()
        problem = self._check(answer)
        if problem:
            raise InvalidResponse(Text(problem, style="prompt.invalid"))
        return answer


class YesNo(Confirm):
    """A yes/no question that takes ``yes`` and ``no`` spelled out too (rich's Confirm takes only y and n)."""

    def process_response(self, value: str) -> bool:
        answer = value.strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        raise InvalidResponse(Text("answer y or n", style="prompt.invalid"))


def let_ctrl_c_interrupt() -> None:
    """Make Ctrl-C interrupt a prompt again: the SIGINT handler polars installs when imported restarts a read that
    a signal interrupts (SA_RESTART, pola-rs/polars#21739), so ``input()`` would wait on through Ctrl-C. Python's
    own handler takes its place for the rest of the command."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def ask(console: Console, name: str, kind: str, model: type[ManagerConfig]) -> tuple[ManagerConfig, Answers]:
    """Ask for each field of ``model`` until the answers make a valid config; return it and the answers.

    Call ``let_ctrl_c_interrupt`` first."""
    asked, skipped = questions(model)
    console.print(
        f"Adding manager [bold]{escape(name)}[/] of kind {escape(kind)}: Enter keeps the value in parentheses, "
        f"{CLEAR} empties an optional field, Ctrl-C stops without saving.",
        highlight=False,
    )
    if skipped:
        console.print(
            f"Not asked (tables): {', '.join(skipped)}; give them with --set or in a [managers.{name}] table of "
            "the config file.",
            highlight=False,
            markup=False,
        )
    answers = Answers(kind)
    while True:
        for question in asked:
            console.print()
            _describe(console, question)
            if question.secret:
                _ask_secret(console, model, question, answers)
            else:
                _ask_field(console, model, question, answers)
        try:
            config = model.model_validate(answers.resolved(answers.table()))
        except ValidationError as exc:
            console.print(
                f"[prompt.invalid]These answers do not fit together: {escape(reasons(exc))}[/]\n"
                "Once more (Enter keeps each answer):",
                highlight=False,
            )
        else:
            return config, _typed(config, answers)


def _describe(console: Console, question: Question) -> None:
    what = f" - {question.description}" if question.description else ""
    console.print(f"[bold]{question.name}[/] ({escape(question.type_label)}){escape(what)}", highlight=False)


def _ask_field(console: Console, model: type[BaseModel], question: Question, answers: Answers) -> None:
    current = _current(question, answers)

    def check(text: str) -> str | None:
        value = _chosen(question, text, current)
        if value is None:
            return f"{question.name} is required: type a value" if question.required else None
        return answer_error(model, answers.resolved(answers.table(question.name, value)), question.name)

    text = FieldPrompt(question.name, question.choices, _shown(question, current), check, console=console)()
    value = _chosen(question, text, current)
    answers.fields.pop(question.name, None)
    if value is not None:
        answers.fields[question.name] = value


def _chosen(question: Question, text: str, current: str | None) -> Any:
    """The value ``text`` stands for: None for an empty answer (the field keeps its default) or ``-``."""
    if text == CLEAR and question.optional:
        return None
    if not text:
        text = current if current is not None and current != question.default else ""
    return question.value(text) if text else None


def _current(question: Question, answers: Answers) -> str | None:
    """The value shown in parentheses: the earlier answer, else the default."""
    if question.name in answers.fields:
        value = answers.fields[question.name]
        return str(value).removeprefix("env:") if question.secret else _text(value)
    return question.default


def _shown(question: Question, current: str | None) -> str:
    return current if current is not None else "required" if question.required else "none"


def _ask_secret(console: Console, model: type[BaseModel], question: Question, answers: Answers) -> None:
    current = _current(question, answers)

    def check(text: str) -> str | None:
        if text == CLEAR and question.optional:
            return None
        if not text and current is None:
            return f"{question.name} is required: name the variable that holds it" if question.required else None
        if text and not _ENV_NAME.match(text):  # never the answer itself: it may be the secret typed here by mistake
            return "that is not an environment variable name (letters, digits and _, not starting with a digit)"
        return None

    label = f"{question.name}: environment variable holding it"
    text = FieldPrompt(label, (), _shown(question, current), check, console=console)()
    variable = None if text == CLEAR else text or current
    answers.fields.pop(question.name, None)
    if variable is None:
        return
    answers.fields[question.name] = f"env:{variable}"
    if variable in os.environ:
        console.print(f"  {variable} is set here: verify uses it", highlight=False)
        answers.typed.pop(variable, None)
    elif variable not in answers.typed:
        console.print(
            f"  {variable} is not set here: type its value to verify with (hidden, never stored; Enter: none)",
            highlight=False,
        )
        answers.typed[variable] = console.input(Text(f"  value of {variable}: ", style="prompt"), password=True)


def _typed(config: ManagerConfig, answers: Answers) -> Answers:
    """``answers`` with each value as the model holds it (``7``, not ``"7"``), secrets still ``env:VARNAME``, and
    only the typed values of variables still referenced."""
    dumped = config.model_dump(mode="json")
    fields = {
        key: value if isinstance(getattr(config, key), SecretStr) else dumped[key]
        for key, value in answers.fields.items()
    }
    referenced = {
        str(value).removeprefix("env:") for key, value in fields.items() if key in secret_fields(type(config))
    }
    return Answers(answers.kind, fields, {name: value for name, value in answers.typed.items() if name in referenced})
