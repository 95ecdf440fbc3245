"""What each agent's desk shows for the call in hand, kept by the server so a reload restores it.

A bus consumer: the agent's call (``CallState`` with its CDR id, so a ticket saved after a reload is still
linked to the call), the final transcript, the copilot's latest suggestion (its card stack and ticket draft),
the 110 alert, sensitive flags and live QA warnings.  The desk adds what the agent did: pinned and dismissed
cards and the draft fields they typed.  An ended call is kept until the agent's next call, at most
``KEEP_ENDED_S`` (after-call work), then forgotten: the stored transcript and the ticket are the record.
"""
from __future__ import annotations

import threading
import time

from domain.call_events import (CallState, Event, PoliceAlert, QAWarning, SensitiveFlag, Suggestion, TranscriptComplete,
                           TranscriptFinal)

KEEP_ENDED_S = 3600.0


class LiveDesks:
    def __init__(self, bus) -> None:
        self._sub = bus.subscribe()
        self._lock = threading.Lock()
        self._calls: dict[str, dict] = {}
        self._agent_call: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-desks", daemon=True)

    def start(self) -> "LiveDesks":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sub.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self._sub.get(timeout=0.2)
            if event is not None:
                with self._lock:
                    self.handle(event)

    def handle(self, event: Event) -> None:
        if not event.call_id:
            return
        if isinstance(event, CallState):
            self._call_state(event)
            return
        desk = self._calls.get(event.call_id)
        if desk is None:  # not an agent's call (IVR, queue): nothing to restore
            return
        if isinstance(event, TranscriptFinal) and event.text.strip():
            desk["transcript"].append(event.model_dump(mode="json", include={"leg", "role", "start_ms", "end_ms", "text"}))
            desk["transcript"].sort(key=lambda s: (s["start_ms"], s["end_ms"]))
        elif isinstance(event, Suggestion):
            desk["suggestion"] = event.model_dump(mode="json")
        elif isinstance(event, PoliceAlert):
            desk["police"] = {"reason": event.reason, "evidence": event.evidence, "at": event.ts}
        elif isinstance(event, SensitiveFlag):
            desk["flags"].append({"flag": event.flag, "evidence": event.evidence, "at": event.ts})
        elif isinstance(event, QAWarning):
            desk["warnings"] = [w for w in desk["warnings"] if w["item"] != event.item]  # a resolved one is withdrawn
            if not event.resolved:
                desk["warnings"].append({"item": event.item, "message": event.message, "at": event.ts})
        elif isinstance(event, TranscriptComplete):
            desk["transcript_complete"] = True

    def _call_state(self, event: CallState) -> None:
        desk = self._calls.get(event.call_id)
        if desk is None:
            if event.agent_id is None or event.state == "ended":
                return
            self._prune()
            desk = self._calls[event.call_id] = {
                "call": {"id": event.call_id, "tenant_id": event.tenant_id, "agent_id": event.agent_id,
                         "db_id": event.detail.get("call_db_id"), "caller": event.caller, "detail": event.detail,
                         "since": event.ts},
                "transcript": [], "suggestion": None, "police": None, "flags": [], "warnings": [],
                "pinned": [], "dismissed": [], "draft_edits": {}, "ended_at": None,
            }
        call = desk["call"]
        call["state"] = event.state
        call["db_id"] = call["db_id"] or event.detail.get("call_db_id")
        if event.agent_id is not None and event.agent_id != call["agent_id"]:  # transferred to another agent
            call["agent_id"] = event.agent_id
        if event.state == "ended":
            desk["ended_at"] = event.ts
        self._agent_call[(event.tenant_id, call["agent_id"])] = event.call_id

    def _prune(self) -> None:
        cutoff = time.time() - KEEP_ENDED_S
        for call_id in [c for c, d in self._calls.items() if d["ended_at"] is not None and d["ended_at"] < cutoff]:
            desk = self._calls.pop(call_id)
            key = (desk["call"]["tenant_id"], desk["call"]["agent_id"])
            if self._agent_call.get(key) == call_id:
                del self._agent_call[key]

    def current(self, tenant_id: int, agent_id: int) -> dict | None:
        """The agent's call in hand (live, or ended and not yet followed by another), as the desk restores it."""
        with self._lock:
            desk = self._calls.get(self._agent_call.get((tenant_id, agent_id), ""))
            if desk is None or desk["call"]["agent_id"] != agent_id:
                return None
            copy = {k: list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v for k, v in desk.items()}
            return copy | {"call": dict(desk["call"])}

    def alerts(self, tenant_id: int, limit: int = 30) -> list[dict]:
        """The tenant's standing alerts (110, sensitive calls, QA reminders not withdrawn) of the calls on agents'
        desks, newest first, as the supervisors' wall lists them after a reload."""
        out = []
        with self._lock:
            for call_id, desk in self._calls.items():
                if desk["call"]["tenant_id"] != tenant_id:
                    continue
                base = {"call_id": call_id, "agent_id": desk["call"]["agent_id"]}
                if desk["police"]:
                    out.append(base | {"kind": "police"} | desk["police"])
                out += [base | {"kind": "sensitive"} | flag for flag in desk["flags"]]
                out += [base | {"kind": "qa"} | warning for warning in desk["warnings"]]
        return sorted(out, key=lambda a: -a["at"])[:limit]

    def _own(self, tenant_id: int, agent_id: int, call_id: str) -> dict | None:
        desk = self._calls.get(call_id)
        if desk is None or desk["call"]["tenant_id"] != tenant_id or desk["call"]["agent_id"] != agent_id:
            return None
        return desk

    def mark_card(self, tenant_id: int, agent_id: int, call_id: str, entry_id: str, action: str) -> dict | None:
        """``pin``, ``unpin`` or ``dismiss`` a card of the agent's call; None when the call is not theirs."""
        with self._lock:
            desk = self._own(tenant_id, agent_id, call_id)
            if desk is None:
                return None
            pinned, dismissed = desk["pinned"], desk["dismissed"]
            for ids in (pinned, dismissed):
                if entry_id in ids:
                    ids.remove(entry_id)
            if action == "pin":
                pinned.insert(0, entry_id)
            elif action == "dismiss":
                dismissed.append(entry_id)
            return {"pinned": list(pinned), "dismissed": list(dismissed)}

    def edit_draft(self, tenant_id: int, agent_id: int, call_id: str, fields: dict[str, str]) -> dict | None:
        """The draft fields the agent typed (they win over the copilot's); None when the call is not theirs."""
        with self._lock:
            desk = self._own(tenant_id, agent_id, call_id)
            if desk is None:
                return None
            desk["draft_edits"].update(fields)
            return dict(desk["draft_edits"])
