"""Knowledge-base domain logic on a real migrated database: versions, workflow, feedback, import/export."""
from __future__ import annotations

import io
import json

import pytest

from domain.db import session_scope
from domain.errors import AppError
from domain.models import KnowledgeEntry, KnowledgeVersion, Tenant
from knowledge import service, transfer


@pytest.fixture
def tenants(engine):
    with session_scope(engine) as s:
        a, b = Tenant(code="laibin", name="来宾市"), Tenant(code="other", name="别的城市")
        s.add_all([a, b])
        s.flush()
        return a.id, b.id


def _entry(**kw) -> service.EntryIn:
    base = dict(kind="faq", title="身份证丢了怎么补办？", body="本人带户口簿到派出所办理，工本费20元，15个工作日。",
                keywords=["身份证", "补办"], department="公安局", category="公安政法/户籍管理/身份证")
    return service.EntryIn(**(base | kw))


def test_versions_and_workflow(engine, tenants):
    t, _ = tenants
    changes = []
    hook = lambda tenant, op, payload: changes.append((tenant, op, payload))  # noqa: E731
    with session_scope(engine) as s:
        e = service.create_entry(s, t, _entry())
        eid = e.id
        assert e.status == "draft" and e.current_version == 1
        with pytest.raises(AppError) as err:
            service.transition(s, t, eid, "publish")  # must be reviewed first
        assert err.value.status == 409
        service.transition(s, t, eid, "submit")
        service.transition(s, t, eid, "publish", on_change=hook)
        assert changes[-1][1] == "upsert" and changes[-1][2].title == "身份证丢了怎么补办？"
        service.update_entry(s, t, eid, _entry(title="身份证丢失补办"))
        got = service.get_entry(s, t, eid)
        assert got["version"] == 2 and got["status"] == "draft" and got["published_version"] == 1
        # the published version stays live until the new one is published
        assert [d.title for d in service.published_docs(s, t)] == ["身份证丢了怎么补办？"]
        assert service.get_entry(s, t, eid, version=1)["title"] == "身份证丢了怎么补办？"
        assert [v["version"] for v in service.versions(s, t, eid)] == [1, 2]
        service.transition(s, t, eid, "submit")
        service.transition(s, t, eid, "publish", on_change=hook)
        assert [d.title for d in service.published_docs(s, t)] == ["身份证丢失补办"]
        service.transition(s, t, eid, "archive", on_change=hook)
        assert changes[-1] == (t, "remove", eid)
        assert service.published_docs(s, t) == []


def test_tenant_isolation(engine, tenants):
    t, other = tenants
    with session_scope(engine) as s:
        eid = service.create_entry(s, t, _entry()).id
        with pytest.raises(AppError) as err:
            service.get_entry(s, other, eid)
        assert err.value.status == 404
        assert service.list_entries(s, other)[0] == 0
        with pytest.raises(AppError):
            service.record_feedback(s, other, "used", entry_id=eid)


def test_recordings_are_transcribed_with_their_own_tenants_published_phrases(engine, tenants):
    """A tenant's ASR lexicon follows its published entries: a draft is not live, a publish or an archive is
    picked up without a restart (rebuilt in the background, the previous lexicon serving meanwhile), and
    another tenant's entries are never used."""
    from knowledge.live import TenantLexicons

    t, other = tenants
    lexicons = TenantLexicons()
    with session_scope(engine) as s:
        eid = service.create_entry(s, t, _entry(body="新卡启用后旧卡作废，医保个人账户余额自动转入新卡。")).id
        before = lexicons.get(s, t)
        assert before.correct("就卡作费了") == "就卡作费了"  # a draft is not live yet
        assert lexicons.get(s, t) is before  # unchanged: kept
        service.transition(s, t, eid, "submit")
        assert lexicons.get(s, t) is before
        service.transition(s, t, eid, "publish")
        assert lexicons.get(s, t) is before  # the rebuild runs in the background ...
        published = _rebuilt(lexicons, s, t, before)
        assert published.correct("就卡作费了") == "旧卡作废了"  # ... and then serves
        assert lexicons.get(s, other).correct("就卡作费了") == "就卡作费了"
        service.transition(s, t, eid, "archive")
        assert lexicons.get(s, t) is published
        assert _rebuilt(lexicons, s, t, published).correct("就卡作费了") == "就卡作费了"


def _rebuilt(lexicons, session, tenant_id, previous, timeout_s: float = 60.0):
    """The tenant's lexicon once the background rebuild has replaced ``previous``."""
    import time

    deadline = time.monotonic() + timeout_s
    while (lexicon := lexicons.get(session, tenant_id)) is previous and time.monotonic() < deadline:
        time.sleep(0.1)
    return lexicon


def test_entry_validation_messages():
    with pytest.raises(ValueError):
        service.EntryIn(title=" ", body="x")
    with pytest.raises(ValueError):
        _entry(effective_from="2026-05-01", effective_to="2026-01-01")
    with pytest.raises(ValueError):
        _entry(attachments=["ftp://x"])


def test_feedback_and_usage_stats(engine, tenants):
    t, _ = tenants
    with session_scope(engine) as s:
        eid = service.create_entry(s, t, _entry()).id
        service.record_suggested(s, t, [eid, eid + 999])
        service.record_suggested(s, t, [eid])
        service.record_feedback(s, t, "used", entry_id=eid)
        service.record_feedback(s, t, "unhelpful", entry_id=eid)
        service.record_feedback(s, t, "category_corrected", detail="民政/社会救助/临时救助")
        stats = service.usage_stats(s, t)
        row = stats["entries"][0]
        assert (row["suggested"], row["used"], row["unhelpful"], row["use_rate"]) == (2, 1, 1, 0.5)
        assert stats["category_corrections"][0]["detail"] == "民政/社会救助/临时救助"
        with pytest.raises(AppError):
            service.record_feedback(s, t, "used")


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def test_import_is_all_or_nothing_with_a_report(engine, tenants):
    t, _ = tenants
    rows = [
        {"id": "k1", "question": "路灯坏了找谁？", "answer": "拨打12345报修，2个工作日内修复。", "category": "城乡建设/市政设施/路灯"},
        {"id": "k2", "question": "", "answer": "缺标题"},
        {"id": "k3", "question": "分类写错", "answer": "x", "category": "不存在/的/分类"},
        {"id": "k1", "question": "重复编号", "answer": "y"},
        {"id": "k4", "kind": "news", "question": "类型错", "answer": "z"},
    ]
    with session_scope(engine) as s:
        report = transfer.import_entries(s, t, _jsonl(rows), "jsonl")
        assert not report.ok
        by_row = {e["row"]: e for e in report.errors}
        assert set(by_row) == {2, 3, 4, 5}
        assert by_row[2]["field"] == "问题/标题" and by_row[3]["field"] == "分类" and "重复" in by_row[4]["message"]
        assert s.query(KnowledgeEntry).count() == 0 and s.query(KnowledgeVersion).count() == 0


def test_import_publish_export_roundtrip_all_formats(engine, tenants):
    t, _ = tenants
    rows = [{"id": f"k{i}", "question": f"问题{i}", "answer": f"答案{i}，收费20元。", "keywords": ["甲", "乙"],
             "department": "民政局", "category": "民政/婚姻登记/结婚登记", "effective_from": "2026-01-01"}
            for i in range(3)]
    changes = []
    with session_scope(engine) as s:
        report = transfer.import_entries(s, t, _jsonl(rows), "jsonl", publish=True,
                                         on_change=lambda *a: changes.append(a))
        assert report.ok and (report.created, report.published) == (3, 3) and len(changes) == 3
        for fmt in ("jsonl", "csv", "xlsx"):
            data = transfer.export_entries(s, t, fmt)
            again = transfer.import_entries(s, t, data, fmt)  # same ids → new versions, not new entries
            assert again.ok and (again.created, again.updated) == (0, 3), (fmt, again.errors)
        e = service.get_entry(s, t, s.query(KnowledgeEntry).filter_by(external_id="k1").one().id)
        assert e["keywords"] == ["甲", "乙"] and e["effective_from"] == "2026-01-01" and e["current_version"] == 4


def test_import_rejects_unreadable_files(engine, tenants):
    t, _ = tenants
    with session_scope(engine) as s:
        with pytest.raises(AppError):
            transfer.import_entries(s, t, b"{not json\n", "jsonl")
        with pytest.raises(AppError):
            transfer.import_entries(s, t, b"PK\x03\x04garbage", "xlsx")
        report = transfer.import_entries(s, t, io.BytesIO(b"").getvalue(), "jsonl")
        assert not report.ok


def test_seed_demo_kb_publishes_our_demo_content(engine, tenants):
    t, _ = tenants
    with session_scope(engine) as s:
        assert transfer.seed_demo_kb(s, t) >= 100
        assert transfer.seed_demo_kb(s, t) == 0  # only into an empty tenant
        docs = service.published_docs(s, t)
        assert len(docs) >= 100 and any("转接110" in d.body for d in docs)
