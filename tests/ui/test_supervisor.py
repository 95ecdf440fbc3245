"""Supervisor pages: reports with charts and XLSX, the big screen and the KPI page at 1366×768 and 4K."""
from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect
from sqlalchemy import select

from domain.models import KpiMonth

from tests.ui.conftest import shot

SIZES = [(1366, 768), (3840, 2160)]
NO_OVERFLOW = """() => ({sw: document.documentElement.scrollWidth, sh: document.documentElement.scrollHeight,
  w: innerWidth, h: innerHeight,
  clipped: [...document.querySelectorAll('.bs-panel, .bs-counter')].filter(e => e.scrollWidth > e.clientWidth + 1
    || e.scrollHeight > e.clientHeight + 1).map(e => e.className)})"""


@pytest.mark.parametrize("size", SIZES, ids=["1366x768", "3840x2160"])
def test_big_screen_fits(open_as, live_app, size):
    page = open_as("supervisor", "/ui/screen.html", viewport=size)
    page.wait_for_selector(".bs-counter")
    page.wait_for_selector("#bs-hourly canvas")
    page.wait_for_timeout(500)
    m = page.evaluate(NO_OVERFLOW)
    shot(page, f"screen-{size[0]}x{size[1]}")
    assert m["sw"] <= m["w"] and m["sh"] <= m["h"], m
    assert not m["clipped"], m
    assert page.locator(".bs-district").count() == 6  # the demo tenant's districts, from its settings
    assert page.inner_text("#bs-title").startswith("来宾市12345政务服务便民热线")  # the tenant's name, not the code's
    assert int(page.inner_text("[data-testid='counter-今日呼入'] .v")) > 0
    with live_app.state.sessions() as session:  # no KPI month computed yet: "暂无数据", not a 0 gauge
        computed = session.scalar(select(KpiMonth.id).limit(1)) is not None
    assert page.locator("#bs-kpi [data-testid=gauge-empty]").count() == (0 if computed else 1)
    if not computed:
        assert "暂无数据" in page.inner_text("#bs-kpi")
    assert not page.errors, page.errors


def test_reports_chart_and_xlsx(open_as, live_app):
    page = open_as("supervisor", "/ui/reports.html?name=daily_ops&period=week")
    page.wait_for_selector("[data-testid=report-table] tbody tr")
    page.wait_for_selector("#report-chart canvas")
    assert page.locator("[data-testid=report-table] tbody tr").count() == 7
    shot(page, "reports-daily-week")
    for name in ["agent_service", "overall", "hourly", "skill_group", "agent_traffic", "satisfaction", "lost",
                 "voicemail", "unanswered"]:
        page.select_option("#report-name", name)
        page.wait_for_url(f"**name={name}*")
    page.select_option("#report-period", "month")
    page.wait_for_url("**period=month*")  # the page takes the period before its export link does
    with page.expect_download() as download:
        page.click("#report-xlsx")
    sheet = load_workbook(io.BytesIO(open(download.value.path(), "rb").read())).active
    assert sheet["A1"].value.startswith("未接来电（月报）")
    assert sheet.max_row > 3
    assert not page.errors, page.errors


def test_live_wall_follows_calls(open_as, live_app):
    from sqlalchemy import select

    from domain.call_events import CallState, PoliceAlert, QAWarning, SensitiveFlag, TranscriptFinal
    from domain.models import Agent

    page = open_as("supervisor", "/ui/wall.html")
    page.wait_for_selector("#live-status[data-status=open]")
    page.wait_for_selector("[data-testid=agent-tile]")
    with live_app.state.sessions() as session:
        agent = session.scalar(select(Agent).where(Agent.work_no == "8"))
    common = {"tenant_id": agent.tenant_id, "call_id": "wall-call-1"}
    live_app.state.bus.publish(CallState(**common, state="talking", caller="13877205678", agent_id=agent.id))
    live_app.state.bus.publish(TranscriptFinal(**common, leg="caller", role="caller", start_ms=0, end_ms=900,
                                               text="我要反映噪音问题"))
    tile = page.wait_for_selector(f"[data-testid=agent-tile][data-agent='{agent.id}'][data-state=talking]")
    page.wait_for_selector("[data-testid=agent-tile]:has-text('我要反映噪音问题')")
    assert "138****5678" in tile.inner_text()
    assert tile.query_selector("button[data-mode=whisper]") is not None
    live_app.state.bus.publish(QAWarning(**common, item="restate", message="尚未复述来电人诉求"))
    live_app.state.bus.publish(SensitiveFlag(**common, flag="media_threat", evidence="我要找电视台曝光"))
    live_app.state.bus.publish(PoliceAlert(**common, reason="人身安全威胁", evidence="有人拿刀"))
    police = page.wait_for_selector("[data-testid=wall-alert][data-kind=police][data-severity=critical]")
    qa = page.wait_for_selector("[data-testid=wall-alert][data-kind=qa][data-severity=warning]")
    sensitive = page.wait_for_selector("[data-testid=wall-alert][data-kind=sensitive]")
    assert "扬言向媒体曝光" in sensitive.inner_text() and "media_threat" not in sensitive.inner_text()
    colour = "el => getComputedStyle(el).backgroundColor"
    assert police.evaluate(colour) == "rgb(255, 227, 227)" and qa.evaluate(colour) == "rgb(255, 248, 219)"  # red, amber
    assert page.locator("[data-testid=wall-alert]").first.get_attribute("data-kind") == "police"  # newest on top
    shot(page, "wall")
    assert "8号" in police.inner_text()  # whose call it is
    # a reload keeps the standing alerts, newest first, with the time they were raised
    page.reload()
    page.wait_for_selector("[data-testid=wall-alert][data-kind=police]")
    kinds = [el.get_attribute("data-kind") for el in page.query_selector_all("[data-testid=wall-alert][data-call=wall-call-1]")]
    assert kinds == ["police", "sensitive", "qa"], kinds
    assert "8号" in page.inner_text("[data-testid=wall-alert][data-kind=police]")
    live_app.state.bus.publish(QAWarning(**common, item="restate", message="尚未复述来电人诉求", resolved=True))
    page.wait_for_selector("[data-testid=wall-alert][data-kind=qa][data-call=wall-call-1]", state="detached")
    assert not page.errors, page.errors


def test_ticket_board_tabs(open_as):
    page = open_as("supervisor", "/ui/tickets.html")
    page.click("[data-tab=all]")
    page.wait_for_selector("[data-testid=ticket-board] tbody tr.clickable")
    page.click("[data-testid=ticket-board] tbody tr.clickable >> nth=0")
    page.wait_for_selector("#tk-detail h2:has-text('工单')")
    shot(page, "tickets")
    page.click("[data-tab=stats]")
    page.wait_for_selector("[data-testid=ticket-stats] strong")
    page.wait_for_selector("#ts-category canvas")
    assert int(page.inner_text("[data-testid=ticket-stats] strong >> nth=0")) > 0
    shot(page, "ticket-stats")
    assert not page.errors, page.errors


@pytest.mark.parametrize("size", SIZES, ids=["1366x768", "3840x2160"])
def test_kpi_month_view_fits(open_as, size):
    page = open_as("supervisor", "/ui/kpi.html", viewport=size)
    page.wait_for_selector("[data-testid=kpi-indicators]")
    page.click("#kpi-compute")
    page.wait_for_selector("[data-testid=kpi-total]")
    assert page.locator("[data-testid=kpi-indicators] tbody tr").count() >= 10  # the eleven indicators of 附件4
    fee = page.inner_text("[data-testid=kpi-fee]")
    assert fee.startswith("¥")
    page.wait_for_selector("#kpi-trend canvas")
    m = page.evaluate("() => ({sw: document.documentElement.scrollWidth, w: innerWidth})")
    shot(page, f"kpi-{size[0]}x{size[1]}")
    assert m["sw"] <= m["w"], m
    assert not page.errors, page.errors


def test_kpi_manual_entry_says_what_is_wrong(open_as):
    """An empty value is refused as empty (not saved as 0); a negative one as negative; a good one is listed."""
    page = open_as("supervisor", "/ui/kpi.html")
    page.wait_for_selector("[data-testid=kpi-indicators]")
    page.select_option("#mn-kind", "commendation")
    page.fill("#mn-note", "市民送锦旗")
    page.click("#manual-form button[type=submit]")
    expect(page.locator("#mn-error")).to_have_text("数值：不能为空")
    assert page.locator("[data-testid=kpi-entries] td:has-text('市民送锦旗')").count() == 0
    page.fill("#mn-value", "-1")
    page.click("#manual-form button[type=submit]")
    expect(page.locator("#mn-error")).to_contain_text("数值：不能小于 0")
    page.fill("#mn-value", "2")
    page.click("#manual-form button[type=submit]")
    page.wait_for_selector("[data-testid=kpi-entries] td:has-text('市民送锦旗')")
    page.select_option("#mn-kind", "override")  # a counted input corrected, chosen by its name in words
    page.select_option("#mn-field", label="受理话务量（投诉率分母）")
    page.fill("#mn-value", "900")
    page.fill("#mn-note", "话务系统停机两小时，按交换机日志修正")
    page.click("#manual-form button[type=submit]")
    page.wait_for_selector("[data-testid=kpi-entries] td:has-text('人工修正数据：受理话务量')")
    assert not page.errors, page.errors
