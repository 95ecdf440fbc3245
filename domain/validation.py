"""Typed text fields for API input: reject markup and SQL-injection payloads with a clear error.

Queries are always parameterised (SQLAlchemy), and pages escape output; these types add a
first line of defence so hostile strings never reach storage or an export.
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!?]|javascript\s*:|on[a-z]+\s*=|&#|\bdata\s*:\s*text/html", re.IGNORECASE)
_SQLI = re.compile(
    r"('|\")\s*(or|and)\s+[\w'\"]+\s*=\s*[\w'\"]+"
    r"|;\s*(drop|delete|insert|update|alter|truncate|create|exec)\s"
    r"|\bunion\s+(all\s+)?select\b"
    r"|('|\")\s*;?\s*--"
    r"|/\*.*\*/"
    r"|\b(sleep|benchmark|pg_sleep)\s*\(",
    re.IGNORECASE,
)


def check_text(value: str) -> str:
    if _MARKUP.search(value):
        raise ValueError("不允许包含 HTML 标签或脚本")
    if _SQLI.search(value):
        raise ValueError("包含不允许的字符序列")
    if any(ord(c) < 32 and c not in "\n\r\t" for c in value):
        raise ValueError("包含不允许的控制字符")
    return value


SafeText = Annotated[str, StringConstraints(max_length=20000), AfterValidator(check_text)]
ShortText = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_text)]
