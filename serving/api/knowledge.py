"""Knowledge base: entries, versions, workflow, search, import/export and usage stats."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import tenant_settings
from domain.accounts import Principal
from domain.models import KnowledgeEntry, KnowledgeVersion
from domain.validation import SafeText
from domain.errors import AppError, not_found
from knowledge import service, transfer
from knowledge.facts import key_facts
from knowledge.taxonomy import Taxonomy
from serving.api.deps import get_session, get_taxonomy, knowledge_indexes, require_roles
from serving.offload import run_heavy

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"])

MANAGERS = ("knowledge_manager",)
SEARCHERS = ("knowledge_manager", "agent", "supervisor")
_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class ActionIn(BaseModel):
    action: Literal["submit", "publish", "reject", "archive", "restore"]


class SearchIn(BaseModel):
    query: SafeText = Field(min_length=1, max_length=500)
    k: int = Field(3, ge=1, le=20)


def _own_change(session: Session, principal: Principal, entry_id: int) -> bool:
    """Whether the version awaiting approval was written by this user (four-eyes: someone else approves it)."""
    author = session.scalar(select(KnowledgeVersion.author_id).join(
        KnowledgeEntry, (KnowledgeEntry.id == KnowledgeVersion.entry_id)
        & (KnowledgeEntry.current_version == KnowledgeVersion.version))
        .where(KnowledgeEntry.id == entry_id, KnowledgeEntry.tenant_id == principal.tenant_id))
    return author == principal.user.id


def _may_publish(session: Session, principal: Principal, entry_id: int) -> bool:
    return not (tenant_settings.get(session, principal.tenant_id).knowledge.kb_four_eyes
                and _own_change(session, principal, entry_id))


def _check_category(data: service.EntryIn, taxonomy: Taxonomy) -> None:
    if data.category and data.category not in set(taxonomy.paths):
        raise AppError("bad_category", f"分类“{data.category}”不在分类体系中", 422)


@router.get("/entries")
def list_entries(
    status: Literal["draft", "review", "published", "archived"] | None = None,
    kind: service.Kind | None = None,
    q: str = Query("", max_length=100),
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(require_roles(*MANAGERS)),
    session: Session = Depends(get_session, scope="function"),
) -> dict:
    total, items = service.list_entries(session, principal.tenant_id, status=status, kind=kind, q=q,
                                        offset=offset, limit=limit)
    return {"total": total, "items": items}


@router.post("/entries", status_code=201)
def create_entry(data: service.EntryIn, principal: Principal = Depends(require_roles(*MANAGERS)),
                 taxonomy: Taxonomy = Depends(get_taxonomy),
                 session: Session = Depends(get_session, scope="function")) -> dict:
    _check_category(data, taxonomy)
    entry = service.create_entry(session, principal.tenant_id, data, principal.user.id)
    return service.entry_out(session, entry)


@router.get("/entries/{entry_id}")
def get_entry(entry_id: int, version: int | None = Query(None, ge=1),
              principal: Principal = Depends(require_roles(*SEARCHERS)), session: Session = Depends(get_session, scope="function")) -> dict:
    """Knowledge managers read any version; the desk (agents, supervisors) reads the published version only."""
    if principal.role not in MANAGERS:
        entry = service.get_published_entry(session, principal.tenant_id, entry_id)
        if version not in (None, entry["version"]):
            raise not_found("该版本")
        return entry
    return {**service.get_entry(session, principal.tenant_id, entry_id, version),
            "may_publish": _may_publish(session, principal, entry_id)}


@router.put("/entries/{entry_id}")
def update_entry(entry_id: int, data: service.EntryIn, principal: Principal = Depends(require_roles(*MANAGERS)),
                 taxonomy: Taxonomy = Depends(get_taxonomy),
                 session: Session = Depends(get_session, scope="function")) -> dict:
    _check_category(data, taxonomy)
    entry = service.update_entry(session, principal.tenant_id, entry_id, data, principal.user.id)
    return service.entry_out(session, entry)


@router.get("/entries/{entry_id}/versions")
def entry_versions(entry_id: int, principal: Principal = Depends(require_roles(*MANAGERS)),
                   session: Session = Depends(get_session, scope="function")) -> list[dict]:
    return service.versions(session, principal.tenant_id, entry_id)


@router.post("/entries/{entry_id}/action")
def entry_action(entry_id: int, body: ActionIn, request: Request, principal: Principal = Depends(require_roles(*MANAGERS)),
                 session: Session = Depends(get_session, scope="function")) -> dict:
    if body.action == "publish" and not _may_publish(session, principal, entry_id):
        raise AppError("four_eyes", "本单位要求双人审核：您不能发布自己编写的内容，请由另一名知识库管理员审核发布", 403)
    indexes = knowledge_indexes(request.app)
    indexes.get(session, principal.tenant_id)  # make sure the live index exists before it is updated
    entry = service.transition(session, principal.tenant_id, entry_id, body.action, principal.user.id,
                               on_change=indexes.on_change)
    return service.entry_out(session, entry)


@router.post("/search")
def search(body: SearchIn, request: Request, principal: Principal = Depends(require_roles(*SEARCHERS)),
           session: Session = Depends(get_session, scope="function")) -> dict:
    result = knowledge_indexes(request.app).get(session, principal.tenant_id).search(body.query, k=body.k)
    return {
        "query": result.query, "normalized_query": result.normalized_query, "no_good_match": result.no_good_match,
        "latency_ms": round(result.latency_ms, 1),
        "hits": [{"entry_id": h.id, "title": h.title, "answer": h.body, "score": round(h.score, 4),
                  "matched_spans": h.matched_spans, "key_facts": key_facts(h.body)} for h in result.hits],
    }


@router.post("/import")
async def import_entries(
    request: Request,
    file: UploadFile = File(...),
    fmt: Literal["jsonl", "csv", "xlsx"] | None = Form(None),
    publish: bool = Form(False),
    principal: Principal = Depends(require_roles(*MANAGERS)),
    taxonomy: Taxonomy = Depends(get_taxonomy),
    session: Session = Depends(get_session, scope="function"),
) -> dict:
    """Only the upload is read on the event loop; parsing, validation and embedding what is published run in the
    app's upload pool (serving.offload)."""
    name = (file.filename or "").lower()
    fmt = fmt or next((f for f in ("jsonl", "csv", "xlsx") if name.endswith("." + f)), None)
    if fmt is None:
        raise AppError("bad_format", "无法判断文件格式，请上传 .jsonl、.csv 或 .xlsx 文件", 422)
    limit = request.app.state.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise AppError("too_large", "文件过大", 413)
    indexes = knowledge_indexes(request.app)

    def run() -> transfer.ImportReport:
        if publish:
            indexes.get(session, principal.tenant_id)
        return transfer.import_entries(session, principal.tenant_id, data, fmt, author_id=principal.user.id,
                                       publish=publish, taxonomy=taxonomy, on_change=indexes.on_change)

    report = await run_heavy(request.app, run)
    if not report.ok:
        raise AppError("import_invalid", f"导入失败：{len(report.errors)} 处错误，未导入任何条目", 422,
                       detail=report.as_dict())
    return report.as_dict()


@router.get("/export")
def export_entries(fmt: Literal["jsonl", "csv", "xlsx"] = "jsonl",
                   status: Literal["draft", "review", "published", "archived"] | None = None,
                   principal: Principal = Depends(require_roles(*MANAGERS)),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    body = transfer.export_entries(session, principal.tenant_id, fmt, status=status)
    return Response(body, media_type=_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="knowledge.{fmt}"'})


@router.get("/stats")
def stats(principal: Principal = Depends(require_roles(*MANAGERS)), session: Session = Depends(get_session, scope="function")) -> dict:
    return service.usage_stats(session, principal.tenant_id)


@router.get("/taxonomy")
def taxonomy(principal: Principal = Depends(require_roles(*SEARCHERS, "qa_reviewer")),
             tax: Taxonomy = Depends(get_taxonomy)) -> dict:
    return {"name": tax.name, "paths": list(tax.paths)}
