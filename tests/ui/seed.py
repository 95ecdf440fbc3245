"""Call records for the UI tests: a week of calls over both demo agents, skill groups and districts."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.models import Agent, Call, Recording, Tenant, Ticket

TICKETS = [("城乡建设/市政设施", "兴宾区城东路路灯不亮已经一个星期，晚上出行不安全，请尽快维修路灯"),
           ("社会保障/医疗保险", "咨询城乡居民医疗保险缴费标准和缴费截止时间，想为老人办理医保缴费"),
           ("交通运输/公交出租", "反映公交车不按站点停靠，司机态度差，要求公交公司加强管理"),
           ("生态环境/噪声污染", "小区附近工地夜间施工噪音扰民，影响居民休息，请环保部门查处"),
           ("社会保障/养老保险", "咨询养老保险退休待遇领取资格认证怎么办理")]
DISTRICTS = ["兴宾区", "合山市", "象州县", "武宣县", "忻城县", "金秀瑶族自治县"]
RESULTS = ["answered"] * 8 + ["abandoned", "lost", "abandoned_short", "out_of_hours"]


def seed_operations(session: Session, tenant_code: str = "laibin", days: int = 8, per_day: int = 40) -> int:
    rng = random.Random(12345)
    tenant = session.scalar(select(Tenant).where(Tenant.code == tenant_code))
    agents = list(session.scalars(select(Agent).where(Agent.tenant_id == tenant.id)))
    now = datetime.now(timezone.utc)
    made = 0
    for day in range(days):
        for i in range(per_day):
            started = now - timedelta(days=day, minutes=rng.randint(0, 600))
            if started > now:
                continue
            result = rng.choice(RESULTS)
            answered = started + timedelta(seconds=rng.randint(2, 40)) if result == "answered" else None
            call = Call(tenant_id=tenant.id, call_uuid=f"seed-{day}-{i}", caller_number=f"1387720{rng.randint(0, 9999):04d}",
                        skill_group=rng.choice(["general", "complaint", "social"]), queue_wait_ms=rng.randint(0, 60000),
                        agent_id=rng.choice(agents).id if result in ("answered", "lost") else None,
                        started_at=started, answered_at=answered,
                        ended_at=(answered or started) + timedelta(seconds=rng.randint(30, 400)),
                        result=result, satisfaction=rng.choice([5, 5, 4, 4, 3, 1, None]) if answered else None,
                        hold_ms=rng.randint(0, 20000) if answered else 0, district=rng.choice(DISTRICTS))
            session.add(call)
            session.flush()
            if result == "out_of_hours" and i % 2 == 0:
                session.add(Recording(tenant_id=tenant.id, call_id=call.id, path=f"/nonexistent/{call.call_uuid}.wav",
                                      duration_ms=rng.randint(5000, 40000)))
            made += 1
        for j, (category, summary) in enumerate(TICKETS[: 2 + day % 4]):
            session.add(Ticket(tenant_id=tenant.id, number=f"LB{day:02d}{j:03d}", category=category, summary=summary,
                               district=DISTRICTS[j % len(DISTRICTS)], created_at=now - timedelta(days=day)))
    session.flush()
    return made


def seed_knowledge(session: Session, tenant_code: str = "laibin", entries: int = 12) -> int:
    """Publish the first entries of the shipped demo KB (a small KB keeps the index build fast)."""
    from knowledge.kbfile import DEMO_KB
    from knowledge.transfer import import_entries

    tenant = session.scalar(select(Tenant).where(Tenant.code == tenant_code))
    lines = DEMO_KB.read_text(encoding="utf-8").splitlines()[:entries]
    report = import_entries(session, tenant.id, "\n".join(lines).encode(), "jsonl", publish=True)
    assert report.ok, report.errors
    return report.created
