"""A knowledge manager edits an entry (with preview and version diff), takes it through review to publication,
and the search the copilot uses then returns the new text."""
from __future__ import annotations

import json

import httpx
from playwright.sync_api import expect

from tests.ui.conftest import PASSWORD, shot

NEW_FACT = "每周六上午9:00至12:00也可到兴宾区政务服务中心办理"


def test_edit_review_publish_then_copilot_search_finds_it(open_as, live_app):
    page = open_as("knowledge_manager", "/ui/knowledge.html#entries")
    page.wait_for_selector("[data-testid=kb-list] tr.clickable")
    page.click("[data-testid=kb-list] tr.clickable >> nth=0")
    page.wait_for_selector("#kb-editor-card:not([hidden])")
    title = page.input_value("#ke-title")
    body = page.input_value("#ke-body")
    page.fill("#ke-body", f"{body}{NEW_FACT}。")
    expect(page.locator("[data-testid=kb-preview]")).to_contain_text(NEW_FACT)  # live preview
    page.focus("#ke-title")
    page.keyboard.press("Enter")  # saves the draft from the keyboard
    page.wait_for_selector("#kb-meta:has-text('当前版本 v2')")
    page.click("[data-testid=diff-button]")
    expect(page.locator("[data-testid=kb-diff] ins")).to_contain_text(NEW_FACT)
    shot(page, "knowledge-edit")

    page.click("#ke-submit")
    page.wait_for_selector("#kb-meta .badge:has-text('待审核')", timeout=90_000)  # the first action builds the index
    page.click("[data-tab=review]")
    page.wait_for_selector(f"#kb-review td:has-text('{title}')")
    page.click(f"#kb-review tr.clickable:has-text('{title}')")
    page.wait_for_selector("#ke-publish:enabled")
    page.click("#ke-publish")
    page.wait_for_selector("#kb-meta:has-text('已发布 v2')", timeout=60_000)

    # the knowledge manager's search tab runs the copilot's retrieval over the live index
    page.click("[data-tab=search]")
    page.fill("#ks-q", f"{title}周六上午能办吗")
    page.press("#ks-q", "Enter")
    page.wait_for_selector("[data-testid=kb-hit]")
    expect(page.locator("[data-testid=kb-hit]").first).to_contain_text(NEW_FACT)
    assert "分数" in page.inner_text("[data-testid=kb-hit] >> nth=0")
    shot(page, "knowledge-search")

    # an agent's copilot search (same index) suggests the published text
    base = live_app.state.base_url
    token = httpx.post(base + "/api/auth/login", json={"username": "agent", "password": PASSWORD, "mode": "bearer"}).json()
    res = httpx.post(base + "/api/knowledge/search", json={"query": f"{title}，周六上午能办吗"}, timeout=60,
                     headers={"Authorization": f"Bearer {token['token']}"}).json()
    assert any(NEW_FACT in hit["answer"] for hit in res["hits"]), json.dumps(res, ensure_ascii=False)[:500]
    assert not page.errors, page.errors


def test_import_shows_validation_report(open_as, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "缺少答复内容"}\n{"title": "", "answer": "无标题"}\n', encoding="utf-8")
    page = open_as("knowledge_manager", "/ui/knowledge.html#io")
    page.set_input_files("#ki-file", str(bad))
    page.click("#kb-import button[type=submit]")
    page.wait_for_selector("#ki-report [data-ok=false]")
    assert page.locator("#ki-report tbody tr").count() >= 2
    shot(page, "knowledge-import")
    assert not page.errors, page.errors


def test_filter_narrows_the_list_and_keeps_the_keyword(open_as):
    page = open_as("knowledge_manager", "/ui/knowledge.html#entries", viewport=(1366, 768))
    page.wait_for_selector("[data-testid=kb-list] tr.clickable")
    before = page.locator("[data-testid=kb-list] tr.clickable").count()
    title = page.inner_text("[data-testid=kb-list] tr.clickable >> nth=0 >> td >> nth=1")
    keyword = title[:4]
    page.evaluate("window.__sameDocument = true")  # gone if the form reloaded the page
    page.fill("#kb-q", keyword)
    page.click("#kb-filter button[type=submit]")
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=kb-list] tr.clickable').length < {before}")
    assert page.evaluate("window.__sameDocument === true")
    assert page.input_value("#kb-q") == keyword
    rows = page.locator("[data-testid=kb-list] tr.clickable")
    assert rows.count() >= 1
    page.select_option("#kb-status", "archived")
    page.wait_for_selector("[data-testid=kb-list] :text('暂无数据')")
    assert page.input_value("#kb-q") == keyword
    shot(page, "knowledge-filter")
    assert not page.errors, page.errors


def test_a_refused_entry_is_explained_in_chinese(open_as):
    page = open_as("knowledge_manager", "/ui/knowledge.html#entries", viewport=(1366, 768))
    page.wait_for_selector("[data-testid=kb-list] tr.clickable")
    page.click("#kb-new")
    page.fill("#ke-title", "长" * 301)
    page.fill("#ke-body", "答复内容")
    page.fill("#ke-effective_from", "2026-12-31")
    page.click("#ke-save")
    error = page.wait_for_selector("#ke-error:has-text('标题')")
    assert error.inner_text() == "标题：不能超过 300 个字符"  # the field's name and the rule, not pydantic's English
    shot(page, "knowledge-validation")
    assert not page.errors, page.errors


def test_four_eyes_keeps_the_author_from_publishing(open_as, live_app):
    """With the tenant's four-eyes setting on, the editor tells the author that another manager must publish."""
    from sqlalchemy import select

    from domain import tenant_settings
    from domain.models import Tenant

    def four_eyes(on: bool) -> None:
        with live_app.state.sessions() as session:
            tenant = session.scalar(select(Tenant).where(Tenant.code == "laibin"))
            current = tenant_settings.get(session, tenant.id)
            tenant_settings.save(session, tenant.id, current.model_copy(update={
                "knowledge": current.knowledge.model_copy(update={"kb_four_eyes": on})}))
            session.commit()

    four_eyes(True)
    try:
        page = open_as("knowledge_manager", "/ui/knowledge.html#entries", viewport=(1366, 768))
        page.wait_for_selector("[data-testid=kb-list] tr.clickable")
        page.click("#kb-new")
        page.fill("#ke-title", "双人审核测试条目")
        page.fill("#ke-body", "由另一名管理员审核发布。")
        page.click("#ke-save")
        page.wait_for_selector("#kb-meta:has-text('当前版本 v1')")
        page.click("#ke-submit")
        page.wait_for_selector("#kb-meta .badge:has-text('待审核')", timeout=90_000)
        page.wait_for_selector("[data-testid=four-eyes]:visible")
        assert page.is_disabled("#ke-publish")
        shot(page, "knowledge-four-eyes")
        assert not page.errors, page.errors
    finally:
        four_eyes(False)
