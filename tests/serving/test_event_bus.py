"""The event bus and the live WebSockets, with a publisher in another process and on real Redis."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from domain.call_events import CallState, TranscriptFinal, parse_event
from serving.event_bus import LocalBus, RedisBus, authkey_for, socket_path
from tests.conftest import login


def _final(call_id: str, text: str, tenant_id: int = 1) -> TranscriptFinal:
    return TranscriptFinal(tenant_id=tenant_id, call_id=call_id, leg="caller", role="caller", start_ms=0,
                           end_ms=900, text=text, confidence=0.9)


def test_local_bus_accepts_events_from_another_process(tmp_path):
    bus = LocalBus()
    key = authkey_for(tmp_path)
    bus.serve_socket(socket_path(tmp_path), key)
    sub = bus.subscribe()
    code = (
        "import sys; from pathlib import Path; from serving.event_bus import SocketPublisher, authkey_for, socket_path;"
        "from domain.call_events import TranscriptFinal;"
        "d = Path(sys.argv[1]); p = SocketPublisher(socket_path(d), authkey_for(d));"
        "[p.publish(TranscriptFinal(call_id='c1', leg='caller', role='caller', start_ms=i, end_ms=i+1, text=f'第{i}句'))"
        " for i in range(50)]"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    got = [sub.get(timeout=5) for _ in range(50)]
    assert [e.text for e in got] == [f"第{i}句" for i in range(50)]
    bus.close()


def test_wrong_authkey_is_refused(tmp_path):
    from serving.event_bus import SocketPublisher

    bus = LocalBus()
    bus.serve_socket(socket_path(tmp_path), authkey_for(tmp_path))
    sub = bus.subscribe()
    SocketPublisher(socket_path(tmp_path), b"not-the-key").publish(_final("c1", "伪造"))
    assert sub.get(timeout=0.5) is None
    bus.close()


def test_redis_bus_round_trip():
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/15").ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    reader, writer = RedisBus("redis://127.0.0.1:6379/15"), RedisBus("redis://127.0.0.1:6379/15")
    sub = reader.subscribe()
    time.sleep(0.6)  # the reader starts at the stream's tail
    writer.publish(_final("redis-call", "跨机器事件"))
    event = sub.get(timeout=5)
    assert event is not None and event.text == "跨机器事件" and event.call_id == "redis-call"
    reader.close()
    writer.close()


def test_event_schema_round_trip():
    event = _final("c9", "您好")
    assert parse_event(event.model_dump_json()) == event


def test_agent_websocket_gets_only_their_calls_and_supervisor_gets_all(app, client):
    from sqlalchemy import select

    from domain.db import session_scope
    from domain.models import Agent, User

    with session_scope(app.state.engine) as s:
        agent_id = s.scalar(select(Agent.id).join(User, User.id == Agent.user_id).where(User.username == "agent"))
    client.post("/api/auth/login", json={"username": "agent", "password": "Hotline#2026"})
    bus = app.state.bus
    with client.websocket_connect("/ws/agent") as ws:
        time.sleep(0.2)
        bus.publish(CallState(tenant_id=1, call_id="other", state="talking", agent_id=agent_id + 100))
        bus.publish(_final("other", "别人的通话"))
        bus.publish(CallState(tenant_id=1, call_id="mine", state="talking", agent_id=agent_id))
        bus.publish(_final("mine", "我要咨询社保"))
        bus.publish(_final("mine", "别的租户", tenant_id=2))
        first, second = parse_event(ws.receive_text()), parse_event(ws.receive_text())
        assert (first.kind, second.kind) == ("call.state", "transcript.final")
        assert second.text == "我要咨询社保"
    client.cookies.clear()
    sup = client.post("/api/auth/login", json={"username": "supervisor", "password": "Hotline#2026"})
    assert sup.status_code == 200
    with client.websocket_connect("/ws/supervisor") as ws:
        time.sleep(0.2)
        bus.publish(_final("any", "任何通话"))
        assert parse_event(ws.receive_text()).text == "任何通话"


def test_websocket_rejects_anonymous_wrong_role_and_cross_site(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws/agent") as ws:
            ws.receive_text()
    headers = login(client, "qa")
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws/supervisor", headers=headers) as ws:
            ws.receive_text()
    agent = login(client, "agent")
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws/agent", headers={**agent, "origin": "http://evil.example"}) as ws:
            ws.receive_text()
