"""Typed text fields for API input.

Text is taken as people write it (``a<b and c>d``, ``O'Brien``, ``--``) and stored as given. What keeps it harmless is
where it goes, not a list of forbidden patterns: SQL is always parameterised (SQLAlchemy), pages write text as text
(``textContent``; the CSP allows no inline script), and spreadsheet exports neutralise formulas
(``domain.spreadsheet``). Refused are only characters no text field may hold: control characters other than tab and
line breaks (NUL and its kind corrupt exports, logs and terminals) and lone surrogates (not encodable as UTF-8).

``SafeText`` has no length of its own: declare one on the field, ``SafeText = Field("", max_length=4000)``, and it is
enforced and published in the OpenAPI schema. ``ShortText`` is at most 200 characters.
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def check_text(value: str) -> str:
    bad = _FORBIDDEN.search(value)
    if bad is None:
        return value
    if "\ud800" <= bad.group() <= "\udfff":
        raise ValueError("包含无效的字符（不成对的代理字符）")
    raise ValueError("包含不允许的控制字符")


# the validator comes first so that a field's own Field(max_length=...) is enforced and shown in the schema
SafeText = Annotated[str, AfterValidator(check_text)]
ShortText = Annotated[str, AfterValidator(check_text), StringConstraints(max_length=200)]
