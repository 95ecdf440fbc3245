"""Import and export of knowledge entries as JSONL, CSV or XLSX, with a validation report.

An import is all-or-nothing: every row is validated first; if any row is bad
the report lists each problem (row number, field, message in Chinese) and
nothing is written.  Rows whose ``id`` matches an existing entry's external id
become a new version of that entry; the others create entries.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.errors import AppError
from domain.models import KnowledgeEntry
from domain.spreadsheet import Sheet, read_cell, safe_cell, to_xlsx
from knowledge import service
from knowledge.taxonomy import Taxonomy

Format = Literal["jsonl", "csv", "xlsx"]
COLUMNS = ["id", "kind", "question", "answer", "keywords", "department", "category", "region",
           "effective_from", "effective_to", "source", "attachments"]
_ALIASES = {"id": "external_id", "question": "title", "answer": "body", "标题": "title", "问题": "title",
            "答案": "body", "内容": "body", "类型": "kind", "关键词": "keywords", "部门": "department", "分类": "category",
            "区域": "region", "来源": "source", "附件": "attachments", "生效日期": "effective_from", "失效日期": "effective_to"}
_LIST_FIELDS = ("keywords", "attachments")
_FIELD_ZH = {"title": "问题/标题", "body": "答案/正文", "kind": "类型", "keywords": "关键词", "department": "部门",
             "category": "分类", "region": "区域", "effective_from": "生效日期", "effective_to": "失效日期",
             "source": "来源", "attachments": "附件", "external_id": "编号"}


@dataclass
class ImportReport:
    total: int = 0
    created: int = 0
    updated: int = 0
    published: int = 0
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {"ok": self.ok, "total": self.total, "created": self.created, "updated": self.updated,
                "published": self.published, "errors": self.errors}


def _rows(data: bytes, fmt: Format) -> list[dict]:
    """The file's rows; a file that cannot be parsed is a 400 naming what is wrong, whatever the parser raised."""
    if fmt == "jsonl":
        rows = []
        for n, line in enumerate(data.decode("utf-8-sig").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise AppError("bad_file", f"第 {n} 行不是合法的 JSON：{e.msg}") from e
                except RecursionError as e:
                    raise AppError("bad_file", f"第 {n} 行的 JSON 嵌套过深") from e
                if not isinstance(row, dict):
                    raise AppError("bad_file", f"第 {n} 行应是一个 JSON 对象")
                rows.append(row)
        return rows
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        try:
            return [{k: read_cell(v) for k, v in row.items()} for row in reader]
        except csv.Error as e:
            raise AppError("bad_file", f"CSV 文件第 {reader.line_num} 行格式错误（字段过长或引号不匹配）") from e
    if fmt == "xlsx":
        from openpyxl import load_workbook

        try:  # read-only workbooks parse lazily: a damaged file can fail on any row
            sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).active
            it = sheet.iter_rows(values_only=True)
            header = [str(h).strip() if h is not None else "" for h in next(it, [])]
            return [{h: read_cell(v) for h, v in zip(header, row) if h}
                    for row in it if any(v not in (None, "") for v in row)]
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad file for the user
            raise AppError("bad_file", "无法读取 Excel 文件：文件已损坏或不是 .xlsx 格式") from e
    raise AppError("bad_format", "只支持 jsonl、csv、xlsx 格式")


def _normalise(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        key = _ALIASES.get(str(key).strip(), str(key).strip())
        if value is None or value == "":
            continue
        if key in _LIST_FIELDS and isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [v for v in text.replace("；", ";").split(";")]
        if key in ("effective_from", "effective_to") and hasattr(value, "date"):
            value = value.date()
        if key in ("title", "body", "external_id") and not isinstance(value, str):
            value = str(value)
        out[key] = value
    return out


def import_entries(session: Session, tenant_id: int, data: bytes, fmt: Format, *, author_id: int | None = None,
                   publish: bool = False, taxonomy: Taxonomy | None = None,
                   on_change: service.IndexHook | None = None) -> ImportReport:
    report = ImportReport()
    try:
        rows = _rows(data, fmt)
    except UnicodeDecodeError as e:
        raise AppError("bad_file", "文件不是 UTF-8 编码") from e
    report.total = len(rows)
    if not rows:
        report.errors.append({"row": 0, "field": "", "message": "文件中没有任何条目"})
        return report
    taxonomy = taxonomy or Taxonomy.load()
    known = set(taxonomy.paths)
    parsed: list[tuple[int, service.EntryIn]] = []
    seen_ids: dict[str, int] = {}
    for n, raw in enumerate(rows, 1):
        try:
            entry = service.EntryIn(**_normalise(raw))
        except (ValidationError, json.JSONDecodeError, TypeError) as e:
            if isinstance(e, ValidationError):
                for err in e.errors():
                    name = str(err["loc"][0]) if err["loc"] else ""
                    report.errors.append({"row": n, "field": _FIELD_ZH.get(name, name),
                                          "message": _message_zh(err)})
            else:
                report.errors.append({"row": n, "field": "", "message": f"格式错误：{e}"})
            continue
        if entry.category and entry.category not in known:
            report.errors.append({"row": n, "field": "分类", "message": f"分类“{entry.category}”不在分类体系中"})
        if entry.external_id:
            if entry.external_id in seen_ids:
                report.errors.append({"row": n, "field": "编号",
                                      "message": f"编号 {entry.external_id} 与第 {seen_ids[entry.external_id]} 行重复"})
            seen_ids[entry.external_id] = n
        parsed.append((n, entry))
    if report.errors:
        return report
    existing = {e.external_id: e for e in session.scalars(
        select(KnowledgeEntry).where(KnowledgeEntry.tenant_id == tenant_id,
                                     KnowledgeEntry.external_id.in_(list(seen_ids))))} if seen_ids else {}
    hooks: list[tuple] = []

    def collect(t: int, op: str, payload) -> None:
        hooks.append((t, op, payload))

    with session.begin_nested():  # all rows or none
        for _, entry in parsed:
            current = existing.get(entry.external_id) if entry.external_id else None
            if current is not None and current.status != "archived":
                row = service.update_entry(session, tenant_id, current.id, entry, author_id)
                report.updated += 1
            else:
                row = service.create_entry(session, tenant_id, entry, author_id)
                report.created += 1
            if publish:
                service.transition(session, tenant_id, row.id, "submit", author_id)
                service.transition(session, tenant_id, row.id, "publish", author_id, on_change=collect)
                report.published += 1
    if on_change:
        for hook in hooks:
            on_change(*hook)
    return report


def _message_zh(err: dict) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "必填项缺失"
    if kind in ("string_too_short",):
        return "不能为空"
    if kind == "string_too_long":
        return f"太长（最多 {err.get('ctx', {}).get('max_length')} 个字符）"
    if kind == "literal_error":
        return "取值不正确（可选：faq、policy、announcement、department、service_item）"
    if kind.startswith("date"):
        return "日期格式应为 YYYY-MM-DD"
    msg = str(err.get("msg", ""))
    return msg.removeprefix("Value error, ")


def export_entries(session: Session, tenant_id: int, fmt: Format, *, status: str | None = None) -> bytes:
    _, entries = service.list_entries(session, tenant_id, status=status, limit=1_000_000)
    rows = [{"id": e["external_id"] or str(e["id"]), "kind": e["kind"], "question": e["title"], "answer": e["body"],
             "keywords": e["keywords"], "department": e["department"], "category": e["category"],
             "region": e["region"], "effective_from": e["effective_from"] or "", "effective_to": e["effective_to"] or "",
             "source": e["source"], "attachments": e["attachments"]} for e in entries]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    flat = [{k: safe_cell(";".join(v) if isinstance(v, list) else v) for k, v in r.items()} for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(flat)
        return buf.getvalue().encode("utf-8-sig")
    if fmt == "xlsx":
        return to_xlsx([Sheet("知识库", COLUMNS, [[r[c] for c in COLUMNS] for r in flat])])
    raise AppError("bad_format", "只支持 jsonl、csv、xlsx 格式")


def seed_demo_kb(session: Session, tenant_id: int, on_change: service.IndexHook | None = None) -> int:
    """Publish the shipped demo KB (our own writing) into an empty tenant; returns the entries added."""
    from knowledge.kbfile import DEMO_KB

    if session.scalar(select(func.count()).select_from(KnowledgeEntry).where(KnowledgeEntry.tenant_id == tenant_id)):
        return 0
    report = import_entries(session, tenant_id, DEMO_KB.read_bytes(), "jsonl", publish=True, on_change=on_change)
    if not report.ok:
        raise AppError("demo_kb_invalid", f"示例知识库校验失败：{report.errors[:3]}")
    return report.created
