"""QA workspace on a real scored call: waveform from the recording, transcript following playback, evidence jumping
to its time, an item overturned with a comment, and the statistics changing."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import select

from domain.models import Agent, Call, Recording, TranscriptSegment
from tests.ui.conftest import PASSWORD, shot

DIALOGUE = "d020"  # a synthetic call where the agent is rude: a serious service violation, so it is queued for review


@pytest.fixture(scope="module")
def scored_call(live_app, shared_data):
    calls = shared_data / "synthetic_calls"
    refs = json.loads((calls / "refs" / f"{DIALOGUE}.json").read_text(encoding="utf-8"))
    with live_app.state.sessions() as session:
        agent = session.scalar(select(Agent).where(Agent.work_no == "15"))
        start = datetime.now(timezone.utc) - timedelta(hours=1)
        call = Call(tenant_id=agent.tenant_id, call_uuid=f"qa-{DIALOGUE}", caller_number="13978261453",
                    agent_id=agent.id, skill_group="general", started_at=start, answered_at=start,
                    ended_at=start + timedelta(seconds=refs[-1]["end"]), result="answered")
        session.add(call)
        session.flush()
        session.add(Recording(tenant_id=agent.tenant_id, call_id=call.id, path=str(calls / "audio" / f"{DIALOGUE}.flac"),
                              sample_rate=8000, channels=2, duration_ms=int(refs[-1]["end"] * 1000)))
        for seg in refs:
            session.add(TranscriptSegment(tenant_id=agent.tenant_id, call_id=call.id, leg=seg["speaker"],
                                          speaker_role=seg["speaker"], start_ms=int(seg["start"] * 1000),
                                          end_ms=int(seg["end"] * 1000), text=seg["text"], engine="reference"))
        session.commit()
        call_id = call.id
    base = live_app.state.base_url
    token = httpx.post(base + "/api/auth/login", json={"username": "qa", "password": PASSWORD, "mode": "bearer"}).json()
    result = httpx.post(f"{base}/api/qa/calls/{call_id}/score", timeout=300,
                        headers={"Authorization": f"Bearer {token['token']}"})  # the real scorer
    assert result.status_code == 201, result.text
    detail = result.json()
    assert detail["review_state"] == "queued", detail
    return detail


def test_reviewer_overturns_an_item_and_stats_change(open_as, scored_call):
    page = open_as("qa_reviewer", "/ui/qa.html#stats")
    page.wait_for_selector("[data-testid=qa-agent-stats]")
    page.wait_for_selector("[data-testid=qa-item-stats]")
    before = page.inner_text("[data-testid=qa-item-stats]")
    assert "推翻" not in before or "100.0%" not in before

    page.click("[data-tab=queue]")
    page.click(f"[data-testid=qa-queue] tr.clickable:has-text('{scored_call['id']}')")
    page.wait_for_selector("[data-testid=qa-item]")
    page.wait_for_selector("#qa-wave[data-peaks]", timeout=30_000)  # peaks computed from the decoded recording
    assert int(page.get_attribute("#qa-wave", "data-peaks")) > 100
    assert page.locator("#qa-transcript .seg").count() > 5
    shot(page, "qa-call-view")

    failed = page.locator("[data-testid=qa-item]:has(.item-fail)")
    assert failed.count() >= 1
    item = failed.first
    evidence = item.locator("[data-testid=evidence]")
    if evidence.count():
        evidence.first.click()
        wanted = next(ev["start_ms"] for i in scored_call["items"] if str(i["id"]) == item.get_attribute("data-item")
                      for ev in i["evidence"] if "start_ms" in ev)
        page.wait_for_timeout(300)
        at = page.evaluate("document.querySelector('#qa-audio').currentTime")
        assert abs(at * 1000 - wanted) < 1500, (at, wanted)
        page.wait_for_selector("#qa-transcript .seg.current")
    item_id = item.get_attribute("data-item")
    # overturning needs a comment
    item.locator("[data-verdict=overturn]").click()
    page.wait_for_selector(".toast.error:has-text('复核意见')")
    item.locator("input").fill("录音中话务员语气正常，系统误判")
    item.locator("[data-verdict=overturn]").click()
    page.wait_for_selector(f"[data-testid=qa-item][data-item='{item_id}'] [data-testid=verdict]:has-text('已推翻')")
    page.wait_for_selector(f"[data-testid=qa-item][data-item='{item_id}'] .item-pass")
    shot(page, "qa-call")
    page.click("#qa-finish")
    page.wait_for_selector(".toast.ok:has-text('复核完成')")

    page.click("[data-tab=stats]")
    page.wait_for_selector("[data-testid=qa-item-stats] td:has-text('100.0%')")
    after = page.inner_text("[data-testid=qa-agent-stats]")
    assert "1" in after.split("\n")[1]  # one reviewed call for the agent
    shot(page, "qa-stats")
    assert not page.errors, page.errors


def test_agent_appeals_and_reviewer_resolves(open_as, scored_call):
    agent = open_as("agent2", "/ui/myqa.html")
    agent.click(f"[data-testid=my-results] tr.clickable >> nth=0")
    agent.wait_for_selector("#my-detail:not([hidden]) .qa-item")
    agent.click("#my-appeal")
    agent.wait_for_selector(".toast.error:has-text('理由')")
    agent.fill("#my-comment", "市民先辱骂，我的回应并无不当")
    agent.click("#my-appeal")
    agent.wait_for_selector("#md-h:has-text('申诉中')")
    shot(agent, "agent-my-qa")

    reviewer = open_as("qa_reviewer", "/ui/qa.html#appeals")
    row = reviewer.locator(f"#qa-appeals tbody tr:has-text('{scored_call['id']}')")
    row.locator("input").fill("复听录音，话务员确有不当用语")
    row.locator("button:has-text('驳回')").click()
    reviewer.wait_for_selector(".toast.ok:has-text('申诉已处理')")
    agent.reload()
    agent.wait_for_selector("[data-testid=my-results] td:has-text('申诉驳回')")
    assert not agent.errors and not reviewer.errors
