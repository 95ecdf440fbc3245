"""Demo tenant, one user per role, agents and skill groups, for the embedded quick start; its settings (Laibin's
lexicon, districts and gazetteer, contract numbers) come from ``tenant_settings.json``."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import accounts, tenant_settings
from domain.models import Agent, Queue, SkillGroup, Tenant, TenantSettingsRow, User

DEMO_PASSWORD = "Hotline#2026"  # published in the README: only the demo loader may set it, and it must be changed
DEMO_USERS: list[tuple[str, str, str]] = [
    ("agent", "agent", "8号话务员 李敏"),
    ("agent2", "agent", "15号话务员 王芳"),
    ("qa", "qa_reviewer", "质检员 周静"),
    ("km", "knowledge_manager", "知识库管理员 陈强"),
    ("supervisor", "supervisor", "值班长 黄蕾"),
    ("evaluator", "evaluator", "评测员 吴昊"),
    ("admin", "admin", "系统管理员"),
]
SKILL_GROUPS = [("general", "综合咨询", "1"), ("complaint", "投诉举报", "2"), ("social", "社保医保", "3")]
DEMO_AGENTS = [("8", "李敏", "agent"), ("15", "王芳", "agent2")]
DEMO_SETTINGS = Path(__file__).with_name("tenant_settings.json")


def demo_settings() -> tenant_settings.TenantSettings:
    """The demo tenant's settings (Laibin's lexicon, districts and gazetteer, contract numbers): what it is
    seeded with, and the lexicon base the benchmarks on its recordings use."""
    return tenant_settings.TenantSettings.model_validate(json.loads(DEMO_SETTINGS.read_text(encoding="utf-8")))


def seed_demo(session: Session, tenant_code: str = "laibin") -> Tenant:
    """Create the demo tenant, users, skill groups and agents; safe to run again."""
    accounts.ensure_roles(session)
    tenant = accounts.ensure_tenant(session, tenant_code, "来宾市12345政务服务便民热线")
    if session.get(TenantSettingsRow, tenant.id) is None:  # an admin's later edits are kept
        tenant_settings.save(session, tenant.id, demo_settings())
    users = {}
    for username, role, display in DEMO_USERS:
        user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.username == username))
        if user is None:
            user = accounts.create_user(session, tenant, username, DEMO_PASSWORD, role, display, demo=True)
        users[username] = user
    for code, name, dtmf in SKILL_GROUPS:
        group = session.scalar(select(SkillGroup).where(SkillGroup.tenant_id == tenant.id, SkillGroup.code == code))
        if group is None:
            group = SkillGroup(tenant_id=tenant.id, code=code, name=name, dtmf=dtmf)
            session.add(group)
            session.flush()
            session.add(Queue(tenant_id=tenant.id, skill_group_id=group.id, name=f"{name}队列"))
    for work_no, name, username in DEMO_AGENTS:
        if session.scalar(select(Agent).where(Agent.tenant_id == tenant.id, Agent.work_no == work_no)) is None:
            session.add(Agent(tenant_id=tenant.id, work_no=work_no, name=name, user_id=users[username].id,
                              skills=[code for code, _, _ in SKILL_GROUPS], sip_uri=f"sip:{work_no}@127.0.0.1"))
    session.flush()
    return tenant
