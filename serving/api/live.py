"""Live WebSockets: an agent gets the events of their own calls, a supervisor every call of the tenant."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import select

from domain.accounts import Principal, resolve_token
from domain.call_events import CallState
from domain.models import Agent
from serving.api.deps import SESSION_COOKIE

router = APIRouter(tags=["live"])
SUPERVISING_ROLES = {"supervisor", "admin"}
CLOSE_POLICY = 1008


def _principal(websocket: WebSocket) -> Principal | None:
    origin = websocket.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != websocket.headers.get("host"):
        return None  # cross-site WebSocket hijacking
    token = websocket.cookies.get(SESSION_COOKIE)
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        return None
    session = websocket.app.state.sessions()
    try:
        principal = resolve_token(session, token)
        session.commit()
        return principal
    finally:
        session.close()


def _agent_id(websocket: WebSocket, principal: Principal) -> int | None:
    session = websocket.app.state.sessions()
    try:
        return session.scalar(select(Agent.id).where(Agent.tenant_id == principal.tenant_id,
                                                     Agent.user_id == principal.user.id))
    finally:
        session.close()


async def _pump(websocket: WebSocket, principal: Principal, accept) -> None:
    bus = websocket.app.state.bus
    sub = bus.subscribe(asyncio.get_running_loop())
    await websocket.accept()
    try:
        receiver = asyncio.create_task(websocket.receive_text())
        while True:
            getter = asyncio.create_task(sub.next())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                receiver.result()  # raises WebSocketDisconnect when the client leaves
                receiver = asyncio.create_task(websocket.receive_text())
                continue
            event = getter.result()
            if event.tenant_id == principal.tenant_id and accept(event):
                await websocket.send_text(event.model_dump_json(exclude={"pcm"}))
    except WebSocketDisconnect:
        pass
    finally:
        sub.close()


@router.websocket("/ws/agent")
async def agent_events(websocket: WebSocket) -> None:
    principal = await asyncio.to_thread(_principal, websocket)  # DB work off the event loop
    if principal is None or principal.role != "agent":
        await websocket.close(code=CLOSE_POLICY)
        return
    agent_id = await asyncio.to_thread(_agent_id, websocket, principal)
    my_calls: set[str] = set()
    in_hand = websocket.app.state.desks.current(principal.tenant_id, agent_id) if agent_id is not None else None
    if in_hand is not None:  # a reload mid-call: the call's next events come here, not only its next state change
        my_calls.add(in_hand["call"]["id"])

    def accept(event) -> bool:
        if isinstance(event, CallState) and event.agent_id is not None and event.agent_id == agent_id:
            my_calls.add(event.call_id)
        return event.call_id in my_calls

    await _pump(websocket, principal, accept)


@router.websocket("/ws/supervisor")
async def supervisor_events(websocket: WebSocket) -> None:
    principal = await asyncio.to_thread(_principal, websocket)  # DB work off the event loop
    if principal is None or principal.role not in SUPERVISING_ROLES:
        await websocket.close(code=CLOSE_POLICY)
        return
    await _pump(websocket, principal, lambda event: True)
