"""Agent desk and supervisor operations: agent states, messages, and live-call commands routed to bridge workers.

Agent state lives in the ``agents`` table (shared with every worker's ACD).
Live-call commands go to the worker that owns the call: call ids start with
the worker's name and the supervisor's registry maps names to control ports.
"""
from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain.errors import AppError
from domain.models import Agent, AgentMessage, utcnow
from telephony.control import control_token, worker_op, worker_status
from telephony.supervisor import WorkerSpec, read_registry

# action -> (states it may start from, resulting state)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "sign_in": (frozenset({"signed_out"}), "not_ready"),
    "sign_out": (frozenset({"ready", "not_ready", "acw"}), "signed_out"),
    "ready": (frozenset({"not_ready", "acw"}), "ready"),  # 置闲
    "not_ready": (frozenset({"ready", "acw"}), "not_ready"),  # 置忙
    "acw": (frozenset({"ready", "not_ready"}), "acw"),  # 事后整理
}

WORKER_ERRORS = {
    "call_not_found": ("通话不存在或已结束", 404),
    "not_talking": ("当前不在通话中", 409),
    "not_held": ("通话未处于保持状态", 409),
    "agent_unavailable": ("目标坐席未签入或正忙", 409),
    "bad_target": ("转接目标无效", 422),
    "bad_mode": ("不支持的操作方式", 422),
    "party_busy": ("已有第三方在通话中", 409),
    "no_party": ("当前没有第三方", 409),
    "no_consult": ("没有正在进行的咨询转接", 409),
    "no_call_slot": ("话路资源不足，请稍后再试", 503),
    "no_capacity": ("外呼话路已满，请稍后再试", 503),
    "timeout": ("坐席服务响应超时", 504),
}


def agent_of_user(session: Session, tenant_id: int, user_id: int) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.tenant_id == tenant_id, Agent.user_id == user_id))
    if agent is None:
        raise AppError("no_agent", "当前账号未绑定坐席工号", 404)
    return agent


def change_state(session: Session, agent: Agent, action: str) -> Agent:
    if action not in TRANSITIONS:
        raise AppError("bad_action", "不支持的坐席状态操作", 422)
    allowed, target = TRANSITIONS[action]
    if agent.state == "busy":
        raise AppError("agent_busy", "通话中不能变更状态，请先结束通话", 409)
    if agent.state not in allowed:
        raise AppError("bad_transition", f"当前状态（{agent.state}）不能执行该操作", 409)
    done = session.execute(
        update(Agent).where(Agent.id == agent.id, Agent.state == agent.state).values(state=target, state_since=utcnow())
    ).rowcount
    if not done:  # the ACD took the agent in between
        raise AppError("agent_busy", "坐席状态已变化，请刷新后重试", 409)
    session.refresh(agent)
    return agent


def send_message(session: Session, tenant_id: int, sender: Agent, to_work_no: str, text: str) -> AgentMessage:
    to = session.scalar(select(Agent).where(Agent.tenant_id == tenant_id, Agent.work_no == to_work_no))
    if to is None:
        raise AppError("not_found", "接收坐席不存在", 404)
    msg = AgentMessage(tenant_id=tenant_id, from_agent_id=sender.id, to_agent_id=to.id, text=text)
    session.add(msg)
    session.flush()
    return msg


def inbox(session: Session, agent: Agent, after_id: int = 0, limit: int = 100) -> list[AgentMessage]:
    return list(session.scalars(
        select(AgentMessage).where(AgentMessage.tenant_id == agent.tenant_id, AgentMessage.to_agent_id == agent.id,
                                   AgentMessage.id > after_id).order_by(AgentMessage.id).limit(limit)))


class Switchboard:
    """Finds the worker of a live call of one tenant and forwards operations to it.

    Built for the principal's tenant: it only sees workers whose snapshot names that tenant, so another
    tenant's call is "not found" exactly like one that has ended, and every operation names the tenant to
    the worker, which refuses a call of another tenant itself.
    """

    def __init__(self, data_dir: Path, tenant_id: int):
        self.data_dir, self.tenant_id = Path(data_dir), tenant_id
        self.token = control_token(self.data_dir)

    def _workers(self) -> list[WorkerSpec]:
        workers = read_registry(self.data_dir)
        if not workers:
            raise AppError("telephony_down", "话务服务未启动", 503)
        return workers

    def _snapshots(self, workers: list[WorkerSpec] | None = None) -> list[tuple[WorkerSpec, dict]]:
        """This tenant's live workers (of ``workers``, default all) with their snapshots."""
        out = []
        for w in self._workers() if workers is None else workers:
            try:
                status = worker_status(w.control_port, self.token)["result"]
            except httpx.HTTPError:
                continue  # a dead worker is being restarted by the supervisor
            if status.get("tenant_id") == self.tenant_id:
                out.append((w, status))
        return out

    def live_calls(self) -> list[dict]:
        return [{**c, "worker": w.name} for w, status in self._snapshots() for c in status["conversations"]]

    def _locate(self, call_uuid: str) -> tuple[WorkerSpec, dict]:
        """The worker of a live call of this tenant (call ids start with the worker's name) and the call."""
        owner = [w for w in self._workers() if w.name == call_uuid.split("-", 1)[0]]
        for w, status in self._snapshots(owner):
            for call in status["conversations"]:
                if call["call_uuid"] == call_uuid:
                    return w, {**call, "worker": w.name}
        raise AppError("call_not_found", WORKER_ERRORS["call_not_found"][0], 404)

    def find(self, call_uuid: str) -> dict:
        return self._locate(call_uuid)[1]

    def operate(self, call_uuid: str, op: str, **args) -> dict:
        worker, _ = self._locate(call_uuid)
        return self._checked(worker.control_port, op, call_uuid=call_uuid, **args)

    def originate(self, work_no: str, number: str) -> dict:
        """Place a callback on this tenant's least-loaded live worker."""
        loads = sorted((len(status["conversations"]), w.control_port) for w, status in self._snapshots())
        for _, port in loads:
            try:
                return self._checked(port, "originate", work_no=work_no, number=number)
            except AppError as exc:
                if exc.code != "no_capacity":
                    raise
        raise AppError("no_capacity", WORKER_ERRORS["no_capacity"][0], 503)

    def _checked(self, port: int, op: str, **args) -> dict:
        try:
            reply = worker_op(port, self.token, op, tenant_id=self.tenant_id, **args)
        except httpx.HTTPError:
            raise AppError("telephony_down", "话务服务暂不可用，请稍后重试", 503) from None
        if not reply.get("ok"):
            code = reply.get("error", "")
            message, status = WORKER_ERRORS.get(code, ("话务操作失败", 409))
            raise AppError(code or "telephony_error", message, status)
        return reply["result"]
