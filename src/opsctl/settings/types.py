"""The field types every config model shares, with their validators, and the :class:`Model` base.

Secrets are only ever references: :data:`SecretRef` takes nothing else, :data:`UrlOrSecret` and
:data:`Url` refuse a password written into a URL. Fields that may hold a reference carry
:data:`REFERENCE_FIELD`, which :func:`opsctl.settings.config.references` finds by type.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from opsctl.redact import REFERENCE_PATTERN, is_reference
from opsctl.timeutil import DURATION_PATTERN, format_duration, parse_duration, validate_timezone

T = TypeVar("T")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_SECRET_PARAMETER = re.compile(r"(ssl)?pass(word|wd)?|pwd|secret|(access_|auth_)?token|api[_-]?key", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)(ssl)?password\s*=", re.IGNORECASE)

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["15m", "1h", "7d"]}),
]
TimeZone = Annotated[str, AfterValidator(validate_timezone)]


def _check_secret_ref(value: str) -> str:
    if not is_reference(value):
        raise ValueError("must be a secret reference: vault:PATH#KEY, aws-sm:NAME[#KEY], file:PATH or env:NAME")
    return value


def plaintext_password(value: str) -> str | None:
    """What in ``value`` is a password in plain text (``user:pass@`` in a URL, a ``password=``
    query parameter, a libpq ``password=`` keyword), in words and without the password;
    None when there is none."""
    scheme = _SCHEME.match(value.strip())
    if scheme is None:
        return "a password= keyword" if _KEYWORD_PASSWORD.search(value) else None
    from urllib.parse import unquote

    rest = value.strip()[scheme.end() :]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if at and userinfo.partition(":")[2]:
        return "user:password@ in the URL"
    query = rest.partition("?")[2].partition("#")[0]
    for pair in re.split(r"[&;]", query):
        name, equals, given = pair.partition("=")
        name = unquote(name).strip()
        if equals and given and _SECRET_PARAMETER.fullmatch(name):
            return f"a {name.lower()}= parameter in the URL"
    return None


def _check_url_or_ref(value: str) -> str:
    if is_reference(value):
        return value
    found = plaintext_password(value)
    if found:
        raise ValueError(
            f"holds a password in plain text ({found}): "
            "put the whole value in a secret reference (vault:PATH#KEY, aws-sm:NAME, file:PATH)"
        )
    return value


def _check_url(value: str) -> str:
    found = plaintext_password(value)
    if found:
        raise ValueError(
            f"holds a password in plain text ({found}): remove it; credentials come from "
            "secret references (vault:PATH#KEY, aws-sm:NAME, file:PATH), never from a URL in the config"
        )
    return value


def _given(value: T | None) -> T | None:
    if value is None:
        raise ValueError("cannot be null here: leave the key out to keep the global value")
    return value


class _Reference:
    """Marks a field that may hold a secret reference (see :func:`opsctl.settings.config.references`)."""


REFERENCE_FIELD = _Reference()

SecretRef = Annotated[
    str,
    AfterValidator(_check_secret_ref),
    WithJsonSchema({"type": "string", "pattern": REFERENCE_PATTERN}),
    REFERENCE_FIELD,
]
UrlOrSecret = Annotated[str, AfterValidator(_check_url_or_ref), REFERENCE_FIELD]
Url = Annotated[str, AfterValidator(_check_url)]
Given = Annotated[T | None, AfterValidator(_given)]  # an override: absent = inherited; null is refused
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
