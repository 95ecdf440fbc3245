"""Cells of exported spreadsheets (XLSX and CSV): the one owner of how user-entered text is written into them.

- Characters XML 1.0 cannot carry (NUL and the other C0 controls but tab and newlines, lone surrogates,
  U+FFFE/U+FFFF) are dropped: one of them made a whole XLSX export fail.
- Text a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) is written with a
  leading ``'`` (CSV/formula injection: ``=HYPERLINK(...)`` must arrive as text, not a live link).

Imports read such a cell back with ``read_cell``, so an exported file imports unchanged.
"""
from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def safe_cell(value):
    """``value`` as it may be written into an exported cell; non-text values are returned as they are."""
    if not isinstance(value, str):
        return value
    value = _NOT_XML.sub("", value)
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def read_cell(value):
    """The text ``safe_cell`` wrote: the ``'`` it put before formula-like text is removed."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value
