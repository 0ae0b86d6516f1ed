"""Meta-tests that keep the error tree honest: every class has a status, an OpenAI error
type and a code, maps to OpenAI-shaped JSON, and appears where the docstring draws it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from voicepocket import errors
from voicepocket.api.error_handlers import from_error

SRC = Path(errors.__file__).resolve().parent

# The error types OpenAI's API puts in ``error.type``.
OPENAI_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "insufficient_quota",
        "server_error",
    }
)


def _subclasses(cls: type[errors.VoicePocketError]) -> set[type[errors.VoicePocketError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


EXPORTED = {
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, errors.VoicePocketError)
}


def _name(cls: type) -> str:
    if cls.__module__ == errors.__name__:
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"  # defined elsewhere (and imported by now)


ALL_ERRORS = sorted(_subclasses(errors.VoicePocketError) | EXPORTED, key=_name)


def _make(cls: type[errors.VoicePocketError]) -> errors.VoicePocketError:
    if issubclass(cls, errors.RetryLater):
        return cls("msg", retry_after_s=2.4)
    return cls("msg", param="input")


def test_the_walk_reaches_the_leaves() -> None:
    leaves = {errors.Draining, errors.WorkerLost, errors.VoiceNotFound, errors.PayloadTooLarge}
    assert leaves <= _subclasses(errors.VoicePocketError)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=_name)
def test_every_error_has_a_status_an_openai_type_and_a_code(
    cls: type[errors.VoicePocketError],
) -> None:
    assert type(cls.status) is int and 400 <= cls.status <= 599
    assert cls.type in OPENAI_ERROR_TYPES
    assert isinstance(cls.code, str) and cls.code
    # The type agrees with the status class: clients retry on server_error.
    assert (cls.type == "server_error") == (cls.status >= 500)
    assert (cls.type in ("rate_limit_error", "insufficient_quota")) == (cls.status == 429)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=_name)
def test_every_error_maps_to_openai_shaped_json(cls: type[errors.VoicePocketError]) -> None:
    error = _make(cls)
    response = from_error(error)

    assert response.status_code == cls.status
    assert response.media_type == "application/json"
    body = json.loads(response.body)
    assert body == {
        "error": {"message": "msg", "type": cls.type, "param": error.param, "code": cls.code}
    }
    retry_after = response.headers.get("retry-after")
    if isinstance(error, errors.RetryLater):
        assert retry_after == "2"
        assert error.retry_after_s == 2.4
    elif isinstance(error, errors.StorageError):
        assert retry_after is not None and int(retry_after) >= 1
    else:
        assert retry_after is None
        assert body["error"]["param"] == "input"


def test_retry_after_is_at_least_one_second() -> None:
    response = from_error(errors.RateLimited("busy", retry_after_s=0.1))
    assert response.headers["retry-after"] == "1"


# One line of the drawn tree: its box-drawing prefix, the class name, then ``[status]``,
# ``(base)`` or (for the root) nothing. Continuation lines start lower-case and do not match.
_TREE_LINE = re.compile(
    r"^(?P<prefix>[ │├└─]*)(?P<name>[A-Z]\w*)(?:\s+(?:\[(?P<status>\d{3})\]|\(base\)))?(\s|$)"
)


def _drawn_tree() -> list[tuple[int, str, int | None]]:
    """(column, class name, status or None) for each class the module docstring draws."""
    doc = errors.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n", 2)[1]
    drawn = []
    for line in block.splitlines():
        if match := _TREE_LINE.match(line):
            status = match["status"]
            drawn.append((len(match["prefix"]), match["name"], int(status) if status else None))
    return drawn


def test_the_docstring_tree_draws_every_class_its_parent_and_status() -> None:
    drawn = _drawn_tree()
    names = [name for _, name, _ in drawn]
    defined = {cls.__name__ for cls in EXPORTED if cls.__module__ == errors.__name__}
    assert len(names) == len(set(names)), "a class is drawn twice"
    assert set(names) == defined

    parents: list[tuple[int, str]] = []  # the open branches, deepest last
    for column, name, status in drawn:
        while parents and parents[-1][0] >= column:
            parents.pop()
        cls = getattr(errors, name)
        if parents:
            assert cls.__bases__ == (getattr(errors, parents[-1][1]),), f"{name}'s parent"
        else:
            assert cls is errors.VoicePocketError
        if status is not None:
            assert cls.status == status, f"{name} is drawn as [{status}]"
        parents.append((column, name))


def test_error_classes_are_defined_only_in_errors_py() -> None:
    """Read from the source, so the answer does not depend on which modules a run imported:
    a class outside errors.py escapes the drawn tree and the checks above."""
    names = {cls.__name__ for cls in EXPORTED}
    outside = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and base.id in names)
                or (isinstance(base, ast.Attribute) and base.attr in names)
                for base in node.bases
            ):
                outside.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert outside == []
