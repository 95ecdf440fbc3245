"""Inbound webhooks of the 110 centre, the provincial 12345 platform and the SMS gateway.

They authenticate by HMAC signature (``tickets.integrations.signing``), not by user roles: a missing or wrong
signature gets 401 ``bad_signature`` before the body is read as JSON. Events are idempotent and applied in order
(``tickets.integrations.inbound.receive``). Requests act for the deployment's default tenant.
Reading and verifying the body happens on the event loop; the database work runs in the thread pool.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.errors import AppError
from domain.models import Tenant
from serving.api.deps import get_session
from tickets import sms
from tickets.integrations import exchange, inbound
from tickets.integrations.signing import keyring, verify

router = APIRouter(prefix="/api/hooks", tags=["integrations"])


class Receipt(BaseModel):
    client_msg_id: str = Field(max_length=100)
    msg_id: str = Field("", max_length=100)
    status: str = Field(max_length=16, pattern=r"^[A-Za-z_]+$")


class ReceiptsIn(BaseModel):
    receipts: list[Receipt] = Field(max_length=1000)


async def _signed(request: Request, channel: str, model: type[BaseModel] | None = None):
    body = await request.body()
    verify(keyring(request.app.state.settings, channel), request.method, request.url.path, body, request.headers)
    if model is None:
        return None
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "message": str(e["msg"]).removeprefix("Value error, ")}
                  for e in exc.errors()]
        raise AppError("validation_error", "输入内容不符合要求", 422, {"fields": fields}) from None


def _tenant_id(request: Request, session: Session, channel: str) -> int:
    session.info["actor_name"] = channel
    tenant = session.scalar(select(Tenant).where(Tenant.code == request.app.state.settings.default_tenant))
    if tenant is None:
        raise AppError("tenant_missing", "未配置默认租户", 503)
    return tenant.id


@router.post("/police110/events")
async def police110_event(request: Request, session: Session = Depends(get_session, scope="function")) -> dict:
    """An event from the 110 centre: a work order it dispatches to us, or sign/return/complete of one we sent."""
    event = await _signed(request, exchange.POLICE110, exchange.ExchangeEvent)
    return await run_in_threadpool(_receive, request, session, exchange.POLICE110, event)


@router.post("/provincial/events")
async def provincial_event(request: Request, session: Session = Depends(get_session, scope="function")) -> dict:
    """An event from the provincial platform: a work order dispatched to the city, or its supervision (督办)."""
    event = await _signed(request, exchange.PROVINCIAL, exchange.ExchangeEvent)
    return await run_in_threadpool(_receive, request, session, exchange.PROVINCIAL, event)


@router.get("/provincial/capacity")
async def provincial_capacity(request: Request, session: Session = Depends(get_session, scope="function")) -> dict:
    """The city's agent capacity, for the provincial platform's unified dispatch (全区统一调度)."""
    await _signed(request, exchange.PROVINCIAL)
    return await run_in_threadpool(
        lambda: exchange.agent_capacity(session, _tenant_id(request, session, exchange.PROVINCIAL)))


@router.post("/sms/receipts")
async def sms_receipts(request: Request, session: Session = Depends(get_session, scope="function")) -> dict:
    """Delivery receipts from the SMS gateway (idempotent)."""
    body = await _signed(request, "sms", ReceiptsIn)
    return await run_in_threadpool(_apply_receipts, session, body)


def _receive(request: Request, session: Session, channel: str, event: exchange.ExchangeEvent) -> dict:
    outcome = inbound.receive(session, _tenant_id(request, session, channel), channel, event,
                               request.app.state.settings)
    session.commit()  # durable before we acknowledge (get_session's own commit runs after the response)
    return outcome


def _apply_receipts(session: Session, body: ReceiptsIn) -> dict:
    session.info["actor_name"] = "sms"
    known = sum(sms.apply_receipt(session, r.client_msg_id, r.msg_id, r.status) is not None for r in body.receipts)
    session.commit()  # durable before we acknowledge
    return {"accepted": len(body.receipts), "matched": known}
