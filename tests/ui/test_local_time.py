"""Times on the pages are the tenant's (Asia/Shanghai for the demo tenant) whatever the browser's zone, and the
admin edits the tenant settings in forms that answer bad input in Chinese."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tests.ui.conftest import PASSWORD, shot


def test_a_list_shows_the_tenants_local_time_in_a_utc_browser(live_app, browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", timezone_id="UTC")
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live_app.state.base_url + "/")
        page.fill("#login-username", "admin")
        page.fill("#login-password", PASSWORD)
        page.press("#login-password", "Enter")
        page.wait_for_url(lambda url: "/ui/index.html" not in url and not url.endswith("/ui/"))
        page.goto(live_app.state.base_url + "/ui/admin.html#audit")
        page.wait_for_selector("[data-testid=audit] tbody tr td")
        shown = page.locator("[data-testid=audit] tbody tr").first.locator("td").first.inner_text()
        rows = page.evaluate("fetch('/api/admin/audit').then((r) => r.json())")
        at = datetime.fromisoformat(rows[0]["at"])
        assert at.utcoffset() is not None  # the API says which moment it means
        assert shown == f"{at.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%d %H:%M}"
        assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "UTC"  # the browser's own zone

        page.click("[data-tab=settings]")
        form = page.locator("[data-testid=settings-time]")
        form.wait_for()
        assert form.locator("label", has_text="时区").count() == 1
        page.fill("#st-time-time_zone", "Mars/Olympus")
        form.locator("button[type=submit]").click()
        form.locator(".field-error", has_text="未知时区“Mars/Olympus”").wait_for()
        shot(page, "admin-settings")
        districts = page.locator("#st-places-districts").input_value().splitlines()
        assert "兴宾区" in districts  # the demo tenant's districts, one per line
        rounding = page.locator("#st-kpi-step_rounding")  # a choice in words, not its code
        assert rounding.locator("option").all_inner_texts() == ["按整档扣", "不扣", "按比例扣"]
        assert "ceil" not in page.inner_text("label[for=st-kpi-step_rounding]")
        assert not errors, errors
    finally:
        context.close()
