"""The administrator adds a user from the keyboard and reads the audit log."""
from __future__ import annotations

from tests.ui.conftest import shot


def test_admin_adds_user_and_reads_audit(open_as):
    page = open_as("admin", "/ui/admin.html")
    page.wait_for_selector("[data-testid=users] td:has-text('supervisor')")
    page.focus("#u-username")
    page.keyboard.type("agent9")
    page.keyboard.press("Tab")
    page.keyboard.type("9号话务员 赵丽")
    page.select_option("#u-role", "agent")
    page.fill("#u-password", "Lantern9#Pass2026")  # not containing the user name (policy)
    page.press("#u-password", "Enter")
    page.wait_for_selector("[data-testid=users] td:has-text('agent9')")
    shot(page, "admin-users")
    page.click("[data-tab=audit]")
    page.wait_for_selector("[data-testid=audit] td:has-text('admin')")
    audit = page.inner_text("[data-testid=audit]")
    assert "登录" in audit and "新建用户" in audit  # entries in words
    assert "auth.login" not in audit and "users.create" not in audit and "_" not in audit
    shot(page, "admin-audit")
    assert not page.errors, page.errors
