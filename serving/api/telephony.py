"""Agent desk and supervisor telephony operations.

Agent states and messages are database operations; live-call commands are
forwarded to the bridge worker that owns the call through a switchboard of the
caller's tenant (see ``telephony.desk``): another tenant's call is not found.
An agent may only operate calls they are on; supervisors may operate any of their tenant.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.accounts import Principal
from domain.errors import AppError
from domain.models import Agent
from domain.pii import mask_pii
from domain.validation import ShortText
from serving.api.deps import get_session, require_roles
from telephony import desk

router = APIRouter(prefix="/api/telephony", tags=["telephony"])

DESK = ("agent", "supervisor")
SUPERVISOR = ("supervisor",)


class StateIn(BaseModel):
    action: Literal["sign_in", "sign_out", "ready", "not_ready", "acw"]


class TransferIn(BaseModel):
    mode: Literal["blind", "attended"] = "blind"
    target_kind: Literal["agent", "skill", "external"]
    target: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_*#+-]+$")


class PartyIn(BaseModel):
    target_kind: Literal["agent", "external"]
    target: str = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_*#+-]+$")


class SuperviseIn(BaseModel):
    mode: Literal["monitor", "whisper", "barge"]
    sip_uri: str = Field("", max_length=200, pattern=r"^(sip:[^\s<>]+)?$",
                         description="Supervisor's softphone; empty = the SIP URI of the supervisor's own agent record.")


class CallbackIn(BaseModel):
    number: str = Field(min_length=3, max_length=20, pattern=r"^\+?[0-9]+$")


class MessageIn(BaseModel):
    to_work_no: str = Field(min_length=1, max_length=16, pattern=r"^[0-9A-Za-z_-]+$")
    text: ShortText = Field(min_length=1)


def _agent_dict(a: Agent) -> dict:
    return {"id": a.id, "work_no": a.work_no, "name": a.name, "state": a.state, "state_since": a.state_since,
            "skills": a.skills}


def _switchboard(request: Request, principal: Principal) -> desk.Switchboard:
    """Every live-call operation goes through this: it only sees the principal's tenant's calls."""
    return desk.Switchboard(request.app.state.settings.data_dir, principal.tenant_id)


def _own_call(request: Request, session: Session, principal: Principal, call_uuid: str) -> desk.Switchboard:
    """Agents may only operate the call they are on.  Commits first: the worker writes the same database."""
    me = None if principal.role == "supervisor" else desk.agent_of_user(session, principal.tenant_id, principal.user.id)
    session.commit()
    board = _switchboard(request, principal)
    if me is not None and board.find(call_uuid).get("agent_id") != me.id:
        raise AppError("forbidden", "只能操作自己的通话", 403)
    return board


@router.get("/agents")
def list_agents(principal: Principal = Depends(require_roles(*DESK)), session: Session = Depends(get_session, scope="function")):
    rows = session.scalars(select(Agent).where(Agent.tenant_id == principal.tenant_id).order_by(Agent.work_no))
    return {"agents": [_agent_dict(a) for a in rows]}


@router.get("/me")
def my_agent(principal: Principal = Depends(require_roles(*DESK)), session: Session = Depends(get_session, scope="function")):
    return _agent_dict(desk.agent_of_user(session, principal.tenant_id, principal.user.id))


@router.post("/me/state")
def set_my_state(body: StateIn, principal: Principal = Depends(require_roles(*DESK)),
                 session: Session = Depends(get_session, scope="function")):
    """签入/签出、置闲/置忙、事后整理."""
    agent = desk.agent_of_user(session, principal.tenant_id, principal.user.id)
    return _agent_dict(desk.change_state(session, agent, body.action))


@router.get("/calls")
def live_calls(request: Request, principal: Principal = Depends(require_roles(*SUPERVISOR))):
    """The tenant's live calls; the caller's number is masked (the wall shows it masked, the agent on the call
    gets it with the call's events)."""
    return {"calls": [{**c, "caller": mask_pii(c["caller"])}
                      for c in _switchboard(request, principal).live_calls()]}


@router.post("/calls/{call_uuid}/transfer")
def transfer(call_uuid: str, body: TransferIn, request: Request, principal: Principal = Depends(require_roles(*DESK)),
             session: Session = Depends(get_session, scope="function")):
    """盲转（坐席/技能组/外线）或咨询转（坐席/外线，之后调用 complete_transfer）."""
    if body.mode == "attended" and body.target_kind == "skill":
        raise AppError("bad_target", "咨询转接只支持坐席或外线", 422)
    board = _own_call(request, session, principal, call_uuid)
    op = "consult" if body.mode == "attended" else "transfer"
    return board.operate(call_uuid, op, target_kind=body.target_kind, target=body.target)


@router.post("/calls/{call_uuid}/conference")
def conference(call_uuid: str, body: PartyIn, request: Request, principal: Principal = Depends(require_roles(*DESK)),
               session: Session = Depends(get_session, scope="function")):
    """三方通话."""
    board = _own_call(request, session, principal, call_uuid)
    return board.operate(call_uuid, "add_party", mode="conference", target_kind=body.target_kind, target=body.target)


@router.post("/calls/{call_uuid}/supervise")
def supervise(call_uuid: str, body: SuperviseIn, request: Request,
              principal: Principal = Depends(require_roles(*SUPERVISOR)), session: Session = Depends(get_session, scope="function")):
    """监听 / 耳语 / 强插. The first call dials the supervisor's softphone; later calls switch the mode."""
    session.commit()
    board = _switchboard(request, principal)
    call = board.find(call_uuid)
    if call.get("party"):
        return board.operate(call_uuid, "set_party_mode", mode=body.mode)
    uri = body.sip_uri or desk.agent_of_user(session, principal.tenant_id, principal.user.id).sip_uri
    session.commit()
    return board.operate(call_uuid, "add_party", mode=body.mode, target_kind="uri", target=uri)


@router.post("/calls/{call_uuid}/{op}")  # declared after the specific /transfer, /conference, /supervise routes
def call_op(call_uuid: str, op: Literal["hold", "retrieve", "hangup", "complete_transfer", "cancel_consult", "drop_party"],
            request: Request, principal: Principal = Depends(require_roles(*DESK)),
            session: Session = Depends(get_session, scope="function")):
    """保持/取回、挂机、完成或取消咨询转接、移除第三方."""
    return _own_call(request, session, principal, call_uuid).operate(call_uuid, op)


@router.post("/callbacks")
def callback(body: CallbackIn, request: Request, principal: Principal = Depends(require_roles(*DESK)),
             session: Session = Depends(get_session, scope="function")):
    """回访: rings the agent's softphone, then the citizen, showing 12345."""
    me = desk.agent_of_user(session, principal.tenant_id, principal.user.id)
    session.commit()
    return _switchboard(request, principal).originate(me.work_no, body.number)


@router.post("/messages")
def send_message(body: MessageIn, principal: Principal = Depends(require_roles(*DESK)),
                 session: Session = Depends(get_session, scope="function")):
    me = desk.agent_of_user(session, principal.tenant_id, principal.user.id)
    msg = desk.send_message(session, principal.tenant_id, me, body.to_work_no, body.text)
    return {"id": msg.id, "sent_at": msg.sent_at}


@router.get("/messages")
def my_messages(after_id: int = 0, principal: Principal = Depends(require_roles(*DESK)),
                session: Session = Depends(get_session, scope="function")):
    me = desk.agent_of_user(session, principal.tenant_id, principal.user.id)
    senders = {a.id: a.work_no for a in session.scalars(select(Agent).where(Agent.tenant_id == principal.tenant_id))}
    return {"messages": [{"id": m.id, "from_work_no": senders.get(m.from_agent_id, ""), "text": m.text,
                          "sent_at": m.sent_at} for m in desk.inbox(session, me, after_id)]}
