"""Issue #26 items 9 and 13: hostile or malformed input gets a 4xx in Chinese, never a 500; text is taken as text;
declared lengths hold; log lines cannot be forged."""
from __future__ import annotations

import io
import logging

from openpyxl import Workbook

from domain.logs import configure_logging
from tests.conftest import login

DRAFT = {"category": "城乡建设/市政设施/路灯", "request_type": "求助", "caller_name": "张先生", "phone": "13800138000",
         "incident_address": "兴宾区城东路12号", "summary": "路灯不亮", "district": "兴宾区"}
TOO_BIG = 2**64


def _error(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    error = r.json()["error"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"]), error
    return error


# ------------------------------------------------------------------ item 9
def test_integers_beyond_64_bits_are_a_400(client):
    agent, qa = login(client, "agent"), login(client, "qa")
    for r in (client.get(f"/api/tickets/{TOO_BIG}", headers=agent),  # path
              client.get("/api/qa/results", params={"agent_id": TOO_BIG}, headers=qa),  # query
              client.post("/api/copilot/feedback", headers=agent,  # JSON body
                          json={"kind": "used", "entry_id": TOO_BIG, "call_id": TOO_BIG})):
        assert _error(r, 400)["code"] == "number_out_of_range"
    # an id the id column can hold is an id (PostgreSQL's id columns are 32-bit: beyond them it is a 400 too)
    assert client.get(f"/api/tickets/{2**31 - 1}", headers=agent).status_code == 404


def test_a_lone_surrogate_is_a_4xx(client):
    km = login(client, "km")
    body = '{"title": "社保卡", "body": "办理", "keywords": ["\\ud800"]}'
    r = client.post("/api/knowledge/entries", headers={**km, "Content-Type": "application/json"}, content=body)
    assert _error(r, 422)["detail"]["fields"][0]["message"] == "包含无效的字符（不成对的代理字符）"
    # a free-text field without a text type (a password): refused by the app-wide handler, not a 500
    r = client.post("/api/auth/login", headers={"Content-Type": "application/json"},
                    content='{"username": "km", "password": "Hotline#2026\\udc00", "mode": "bearer"}')
    assert r.status_code < 500 and _error(r, r.status_code)


def test_damaged_import_files_are_a_400(client):
    km = login(client, "km")
    wb = Workbook()
    wb.active.append(["question", "answer"])
    for i in range(2000):
        wb.active.append([f"问题 {i}", "答复" * 20])
    buf = io.BytesIO()
    wb.save(buf)
    truncated = buf.getvalue()[: len(buf.getvalue()) * 2 // 3]
    r = client.post("/api/knowledge/import", headers=km, files={"file": ("kb.xlsx", truncated)})
    assert _error(r, 400)["message"] == "无法读取 Excel 文件：文件已损坏或不是 .xlsx 格式"

    oversized = ("question,answer\n社保卡," + "长" * 200_000 + "\n").encode()
    r = client.post("/api/knowledge/import", headers=km, files={"file": ("kb.csv", oversized)})
    assert _error(r, 400)["code"] == "bad_file"


# ------------------------------------------------------------------ item 13
def test_text_is_taken_as_text_and_control_characters_are_refused(client):
    agent = login(client, "agent")
    summary = "路灯不亮 a<b and c>d <script>alert(1)</script> O'Brien -- 1=1"
    r = client.post("/api/tickets", headers=agent, json={"draft": {**DRAFT, "summary": summary}})
    assert r.status_code == 201, r.text
    assert client.get(f"/api/tickets/{r.json()['id']}", headers=agent).json()["summary"] == summary

    r = client.post("/api/tickets", headers=agent, json={"draft": {**DRAFT, "summary": "路灯\x00不亮"}})
    assert _error(r, 422)["detail"]["fields"][0]["message"] == "包含不允许的控制字符"


def test_the_ticket_summary_holds_its_declared_4000_characters(client, app):
    agent = login(client, "agent")
    schema = app.openapi()["components"]["schemas"]["TicketDraft"]["properties"]["summary"]
    assert schema["maxLength"] == 4000
    assert client.post("/api/tickets", headers=agent, json={"draft": {**DRAFT, "summary": "路" * 4000}}).status_code == 201
    r = client.post("/api/tickets", headers=agent, json={"draft": {**DRAFT, "summary": "路" * 20000}})
    assert _error(r, 422)["detail"]["fields"][0]["field"].endswith("summary")


def test_input_cannot_forge_log_lines(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging()
        forged = "admin\r\n2026-12-07 02:00:00,000 INFO hotline.api: admin 13978261453 logged in\x1b[2K"
        logging.getLogger("hotline.api").warning("login failed for %s", forged)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith("login failed for admin\\r\\n2026-12-07 02:00:00,000 INFO hotline.api: admin 139****1453 "
                             "logged in\\x1b[2K")
