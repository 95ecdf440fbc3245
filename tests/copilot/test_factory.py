"""The serving-side factory: tenant KB from the database, usage counts written back."""
from __future__ import annotations

import json

from domain.db import session_scope
from domain.call_events import Suggestion, TranscriptFinal
from domain.models import KnowledgeEntry, Tenant


def test_factory_uses_tenant_kb_and_records_suggestions(engine, settings):
    from copilot.processor import copilot_factory
    from knowledge import transfer

    rows = [{"id": "x1", "question": "社保卡丢了怎么补办？", "answer": "带身份证到社保服务中心补办，工本费20元。"},
            {"id": "x2", "question": "路灯不亮找谁修？", "answer": "拨打12345报修。"}]
    with session_scope(engine) as s:
        tenant = Tenant(code="laibin", name="来宾市")
        s.add(tenant)
        s.flush()
        tid = tenant.id
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        assert transfer.import_entries(s, tid, data, "jsonl", publish=True).ok
    factory = copilot_factory(settings, engine)
    first = TranscriptFinal(tenant_id=tid, call_id="c9", leg="caller", role="caller", start_ms=0, end_ms=900,
                            text="我的社保卡不见了，怎么补办啊")
    out = factory(first).process(first)
    s_ = next(e for e in out if isinstance(e, Suggestion))
    assert s_.hits[0].title.startswith("社保卡")
    with session_scope(engine) as s:
        entry = s.query(KnowledgeEntry).filter_by(external_id="x1").one()
        assert entry.suggested_count == 1
