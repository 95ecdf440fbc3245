"""Knowledge-base domain logic on the ``knowledge_*`` tables.

Entries are versioned: every edit adds a ``KnowledgeVersion``; the published
content is the version named by ``published_version`` until a newer one is
published.  Workflow: draft → review → published (→ archived), by knowledge
managers.  Every query filters by ``tenant_id``.  Publishing and archiving call
the optional ``on_change`` hook so a live search index updates incrementally.
"""
from __future__ import annotations

from datetime import date
from typing import Callable, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from domain import audit
from domain.errors import AppError, not_found
from domain.models import KnowledgeEntry, KnowledgeFeedback, KnowledgeVersion, utcnow
from domain.validation import SafeText, ShortText
from knowledge.retrieval import KBDoc

Kind = Literal["faq", "policy", "announcement", "department", "service_item"]
KIND_LABELS = {"faq": "常见问答", "policy": "法律法规", "announcement": "公告", "department": "部门", "service_item": "一号快办事项"}
STATUS_LABELS = {"draft": "草稿", "review": "待审核", "published": "已发布", "archived": "已归档"}
FeedbackKind = Literal["used", "unhelpful", "category_corrected"]

# (from status, action) → to status
TRANSITIONS = {
    ("draft", "submit"): "review",
    ("review", "publish"): "published",
    ("review", "reject"): "draft",
    ("published", "archive"): "archived",
    ("draft", "archive"): "archived",
    ("archived", "restore"): "draft",
}

IndexHook = Callable[[int, str, "KBDoc | int"], None]  # (tenant_id, "upsert"|"remove", doc or entry id)


class EntryIn(BaseModel):
    """One knowledge entry as written by a knowledge manager or imported from a file."""

    kind: Kind = "faq"
    title: SafeText = Field(min_length=1, max_length=300)
    body: SafeText = Field(min_length=1, max_length=20000)
    keywords: list[ShortText] = Field(default_factory=list, max_length=50)
    department: SafeText = Field("", max_length=100)
    category: SafeText = Field("", max_length=200)
    region: SafeText = Field("", max_length=64)
    effective_from: date | None = None
    effective_to: date | None = None
    source: SafeText = Field("", max_length=300)
    attachments: list[ShortText] = Field(default_factory=list, max_length=20)
    external_id: SafeText = Field("", max_length=64)

    @field_validator("title", "body")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("不能为空")
        return v.strip()

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: list[str]) -> list[str]:
        return [k.strip() for k in v if k and k.strip()]

    @field_validator("attachments")
    @classmethod
    def _links(cls, v: list[str]) -> list[str]:
        for link in v:
            if not link.startswith(("http://", "https://", "/")):
                raise ValueError(f"附件必须是链接：{link}")
        return v

    @model_validator(mode="after")
    def _dates(self) -> "EntryIn":
        if self.effective_from and self.effective_to and self.effective_from > self.effective_to:
            raise ValueError("生效日期不能晚于失效日期")
        return self


def _entry(session: Session, tenant_id: int, entry_id: int) -> KnowledgeEntry:
    entry = session.scalar(select(KnowledgeEntry).where(KnowledgeEntry.id == entry_id,
                                                        KnowledgeEntry.tenant_id == tenant_id))
    if entry is None:
        raise not_found("知识条目")
    return entry


def _version(session: Session, entry: KnowledgeEntry, version: int | None) -> KnowledgeVersion:
    return session.scalar(select(KnowledgeVersion).where(KnowledgeVersion.entry_id == entry.id,
                                                         KnowledgeVersion.version == (version or entry.current_version)))


def entry_out(session: Session, entry: KnowledgeEntry, version: int | None = None) -> dict:
    v = _version(session, entry, version)
    return {
        "id": entry.id, "external_id": entry.external_id, "kind": entry.kind, "kind_label": KIND_LABELS[entry.kind],
        "status": entry.status, "status_label": STATUS_LABELS[entry.status], "current_version": entry.current_version,
        "published_version": entry.published_version, "version": v.version, "title": v.title, "body": v.body,
        "keywords": v.keywords, "department": v.department, "category": v.category, "region": v.region,
        "effective_from": v.effective_from.isoformat() if v.effective_from else None,
        "effective_to": v.effective_to.isoformat() if v.effective_to else None,
        "source": v.source, "attachments": v.attachments, "suggested_count": entry.suggested_count,
        "used_count": entry.used_count, "unhelpful_count": entry.unhelpful_count,
        "updated_at": entry.updated_at.isoformat(),
    }


def _add_version(session: Session, entry: KnowledgeEntry, data: EntryIn, author_id: int | None) -> None:
    session.add(KnowledgeVersion(
        tenant_id=entry.tenant_id, entry_id=entry.id, version=entry.current_version, title=data.title,
        body=data.body, keywords=data.keywords, department=data.department, category=data.category,
        region=data.region, effective_from=data.effective_from, effective_to=data.effective_to,
        source=data.source, attachments=data.attachments, author_id=author_id,
    ))


def create_entry(session: Session, tenant_id: int, data: EntryIn, author_id: int | None = None) -> KnowledgeEntry:
    entry = KnowledgeEntry(tenant_id=tenant_id, kind=data.kind, external_id=data.external_id, status="draft",
                           current_version=1)
    session.add(entry)
    session.flush()
    _add_version(session, entry, data, author_id)
    session.flush()
    audit.record(session, "knowledge.create", tenant_id=tenant_id, actor_id=author_id, entity="knowledge_entry",
                 entity_id=entry.id, after={"title": data.title, "kind": data.kind})
    return entry


def update_entry(session: Session, tenant_id: int, entry_id: int, data: EntryIn,
                 author_id: int | None = None) -> KnowledgeEntry:
    """A new version; the entry goes back to draft (the published version stays live until republished)."""
    entry = _entry(session, tenant_id, entry_id)
    if entry.status == "archived":
        raise AppError("archived", "已归档的条目不能编辑，请先恢复", 409)
    entry.current_version += 1
    entry.kind = data.kind
    entry.external_id = data.external_id or entry.external_id
    entry.status = "draft"
    entry.updated_at = utcnow()
    _add_version(session, entry, data, author_id)
    session.flush()
    audit.record(session, "knowledge.update", tenant_id=tenant_id, actor_id=author_id, entity="knowledge_entry",
                 entity_id=entry.id, after={"version": entry.current_version, "title": data.title})
    return entry


def transition(session: Session, tenant_id: int, entry_id: int, action: str, actor_id: int | None = None,
               on_change: IndexHook | None = None) -> KnowledgeEntry:
    entry = _entry(session, tenant_id, entry_id)
    target = TRANSITIONS.get((entry.status, action))
    if target is None:
        raise AppError("bad_transition", f"“{STATUS_LABELS[entry.status]}”状态的条目不能执行该操作", 409)
    before = entry.status
    entry.status = target
    entry.updated_at = utcnow()
    if target == "published":
        entry.published_version = entry.current_version
    session.flush()
    audit.record(session, f"knowledge.{action}", tenant_id=tenant_id, actor_id=actor_id, entity="knowledge_entry",
                 entity_id=entry.id, before={"status": before}, after={"status": target})
    if on_change:
        if target == "published":
            on_change(tenant_id, "upsert", doc_of(session, entry))
        elif target == "archived":
            on_change(tenant_id, "remove", entry.id)
    return entry


def doc_of(session: Session, entry: KnowledgeEntry) -> KBDoc:
    v = _version(session, entry, entry.published_version)
    return KBDoc(id=entry.id, title=v.title, body=v.body, department=v.department,
                 keywords=tuple(v.keywords or ()), category=v.category)


def published_docs(session: Session, tenant_id: int) -> list[KBDoc]:
    rows = session.execute(
        select(KnowledgeEntry, KnowledgeVersion)
        .join(KnowledgeVersion, (KnowledgeVersion.entry_id == KnowledgeEntry.id)
              & (KnowledgeVersion.version == KnowledgeEntry.published_version))
        .where(KnowledgeEntry.tenant_id == tenant_id, KnowledgeEntry.status != "archived",
               KnowledgeEntry.published_version.is_not(None))  # an edited entry stays live until republished
        .order_by(KnowledgeEntry.id)
    ).all()
    return [KBDoc(id=e.id, title=v.title, body=v.body, department=v.department, keywords=tuple(v.keywords or ()),
                  category=v.category) for e, v in rows]


def published_state(session: Session, tenant_id: int) -> int:
    """A fingerprint of which versions of a tenant's entries are live: it changes with every publish or archive
    and with nothing else (a published version's text never changes), and costs one small query."""
    rows = session.execute(
        select(KnowledgeEntry.id, KnowledgeEntry.published_version)
        .where(KnowledgeEntry.tenant_id == tenant_id, KnowledgeEntry.status != "archived",
               KnowledgeEntry.published_version.is_not(None))
        .order_by(KnowledgeEntry.id)
    )
    return hash(tuple(tuple(row) for row in rows))


def list_entries(session: Session, tenant_id: int, *, status: str | None = None, kind: str | None = None,
                 q: str = "", offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
    stmt = (select(KnowledgeEntry).join(KnowledgeVersion, (KnowledgeVersion.entry_id == KnowledgeEntry.id)
                                        & (KnowledgeVersion.version == KnowledgeEntry.current_version))
            .where(KnowledgeEntry.tenant_id == tenant_id))
    if status:
        stmt = stmt.where(KnowledgeEntry.status == status)
    if kind:
        stmt = stmt.where(KnowledgeEntry.kind == kind)
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(KnowledgeVersion.title.like(like), KnowledgeVersion.body.like(like),
                              KnowledgeVersion.department.like(like)))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(KnowledgeEntry.id).offset(offset).limit(limit)).all()
    return int(total or 0), [entry_out(session, e) for e in rows]


def get_entry(session: Session, tenant_id: int, entry_id: int, version: int | None = None) -> dict:
    entry = _entry(session, tenant_id, entry_id)
    if version is not None and not 1 <= version <= entry.current_version:
        raise not_found("该版本")
    return entry_out(session, entry, version)


def get_published_entry(session: Session, tenant_id: int, entry_id: int) -> dict:
    """An entry as the desk sees it: its live (published) version, as ``published_docs`` serves it; drafts,
    entries in review, archived entries and unpublished versions are not found."""
    entry = _entry(session, tenant_id, entry_id)
    if entry.status == "archived" or entry.published_version is None:
        raise not_found("知识条目")
    out = entry_out(session, entry, entry.published_version)
    return {k: v for k, v in out.items() if k not in {"current_version", "suggested_count", "used_count",
                                                     "unhelpful_count"}}


def versions(session: Session, tenant_id: int, entry_id: int) -> list[dict]:
    entry = _entry(session, tenant_id, entry_id)
    rows = session.scalars(select(KnowledgeVersion).where(KnowledgeVersion.entry_id == entry.id,
                                                          KnowledgeVersion.tenant_id == tenant_id)
                           .order_by(KnowledgeVersion.version)).all()
    return [{"version": v.version, "title": v.title, "author_id": v.author_id, "created_at": v.created_at.isoformat(),
             "published": v.version == entry.published_version} for v in rows]


# ---------------------------------------------------------------- usage and feedback
def record_suggested(session: Session, tenant_id: int, entry_ids: list) -> None:
    ids = [i for i in entry_ids if isinstance(i, int)]
    if ids:
        for entry in session.scalars(select(KnowledgeEntry).where(KnowledgeEntry.tenant_id == tenant_id,
                                                                  KnowledgeEntry.id.in_(ids))):
            entry.suggested_count += 1


def record_feedback(session: Session, tenant_id: int, kind: FeedbackKind, *, entry_id: int | None = None,
                    user_id: int | None = None, call_id: int | None = None, detail: str = "") -> KnowledgeFeedback:
    if kind in ("used", "unhelpful"):
        if entry_id is None:
            raise AppError("entry_required", "请指明是哪条知识")
        entry = _entry(session, tenant_id, entry_id)
        if kind == "used":
            entry.used_count += 1
        else:
            entry.unhelpful_count += 1
    elif kind == "category_corrected":
        if not detail.strip():
            raise AppError("detail_required", "请填写更正后的分类")
        if entry_id is not None:
            _entry(session, tenant_id, entry_id)
    else:
        raise AppError("bad_feedback", "反馈类型不正确")
    row = KnowledgeFeedback(tenant_id=tenant_id, entry_id=entry_id, call_id=call_id, user_id=user_id, kind=kind,
                            detail=detail)
    session.add(row)
    session.flush()
    return row


def usage_stats(session: Session, tenant_id: int, limit: int = 100) -> dict:
    entries = session.execute(
        select(KnowledgeEntry, KnowledgeVersion.title)
        .join(KnowledgeVersion, (KnowledgeVersion.entry_id == KnowledgeEntry.id)
              & (KnowledgeVersion.version == KnowledgeEntry.current_version))
        .where(KnowledgeEntry.tenant_id == tenant_id)
        .order_by(KnowledgeEntry.suggested_count.desc(), KnowledgeEntry.id).limit(limit)
    ).all()
    corrections = session.scalars(
        select(KnowledgeFeedback).where(KnowledgeFeedback.tenant_id == tenant_id,
                                        KnowledgeFeedback.kind == "category_corrected")
        .order_by(KnowledgeFeedback.at.desc()).limit(50)).all()
    return {
        "entries": [{"id": e.id, "title": title, "status": e.status, "suggested": e.suggested_count,
                     "used": e.used_count, "unhelpful": e.unhelpful_count,
                     "use_rate": round(e.used_count / e.suggested_count, 3) if e.suggested_count else None}
                    for e, title in entries],
        "category_corrections": [{"call_id": c.call_id, "user_id": c.user_id, "detail": c.detail,
                                  "at": c.at.isoformat()} for c in corrections],
    }
