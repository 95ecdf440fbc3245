"""Exported spreadsheets (XLSX and CSV): the one XLSX writer (:func:`to_xlsx` of :class:`Sheet` tables, used by
every report and export) and the one owner of how user-entered text is written into a cell.

- Characters XML 1.0 cannot carry (NUL and the other C0 controls but tab and newlines, lone surrogates,
  U+FFFE/U+FFFF) are dropped: one of them made a whole XLSX export fail.
- Text a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) is written with a
  leading ``'`` (CSV/formula injection: ``=HYPERLINK(...)`` must arrive as text, not a live link).

Imports read such a cell back with ``read_cell``, so an exported file imports unchanged.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
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


@dataclass
class Sheet:
    """One table of an export: the sheet's name, an optional bold heading line above the table (a report's title
    and period), the header row (none for a list of label/value pairs) and the rows."""

    title: str
    header: list[str]
    rows: list[list]
    heading: str = ""
    widths: list[float] = field(default_factory=list)  # in characters, per column; default: fitted to the header
    wrap: tuple[int, ...] = ()  # 0-based columns whose long text wraps


def to_xlsx(sheets: list[Sheet]) -> bytes:
    """The workbook of ``sheets``, in order; every cell goes through :func:`safe_cell`."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        ws = wb.create_sheet(sheet.title[:31])  # Excel's limit on sheet names
        if sheet.heading:
            ws.append([safe_cell(sheet.heading)])
            ws.cell(1, 1).font = Font(bold=True, size=14)
        if sheet.header:
            ws.append([safe_cell(h) for h in sheet.header])
            for cell in ws[ws.max_row]:
                cell.font = Font(bold=True)
        for row in sheet.rows:
            ws.append([safe_cell(v) for v in row])
        widths = sheet.widths or [max(10, len(str(h)) * 2 + 2) for h in sheet.header]
        for i, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        for i in sheet.wrap:
            for (cell,) in ws.iter_rows(min_col=i + 1, max_col=i + 1):
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
