"""The evaluator runs a real benchmark from the UI, watches its progress, reads its report and compares two runs."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.ui.conftest import shot


def _run_asr(page, data_dir: str, limit: str, runs_before: int) -> None:
    page.select_option("#eval-benchmark", "asr")
    page.select_option("#param-data", data_dir)  # a data set the server offers, not a typed server path
    page.fill("#param-limit", limit)
    page.click("#eval-start")
    page.wait_for_selector("#eval-running:visible")
    done = page.locator("[data-testid=eval-runs] .badge:has-text('已完成')")
    expect(done).to_have_count(runs_before + 1, timeout=120_000)
    page.wait_for_selector("#eval-start:enabled")
    page.wait_for_selector("#eval-report-title:has-text('已完成')")


def test_run_report_and_compare(open_as, shared_data):
    page = open_as("evaluator", "/ui/eval.html")
    page.wait_for_selector("#eval-benchmark option[value=asr]", state="attached")
    # a missing required parameter is refused with a clear message
    page.select_option("#eval-benchmark", "asr")
    page.select_option("#param-data", "")
    page.click("#eval-start")
    page.wait_for_selector("#eval-error:has-text('缺少必填参数')")

    data = "mandarin_asr_samples"
    assert "mandarin_asr_samples（数据集目录）" in page.inner_text("#param-data")
    _run_asr(page, data, "2", 0)
    page.wait_for_selector("#eval-cer-chart canvas")
    metrics = page.inner_text("[data-testid=eval-metrics]")
    assert "字错误率" in metrics and "实时率" in metrics  # named metrics, not JSON keys
    shot(page, "eval-report")
    _run_asr(page, data, "3", 1)
    boxes = page.locator("#eval-runs input[type=checkbox]")
    assert boxes.count() == 2
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#eval-compare")
    table = page.wait_for_selector("[data-testid=eval-compare]")
    assert "B − A" in table.inner_text() and "条数" in table.inner_text()
    shot(page, "eval-compare")
    assert not page.errors, page.errors


def test_a_failed_run_is_explained_in_words(open_as):
    page = open_as("evaluator", "/ui/eval.html", viewport=(1366, 768))
    page.wait_for_selector("#eval-benchmark option[value=asr]", state="attached")
    page.select_option("#eval-benchmark", "asr")
    page.select_option("#param-data", "crosswoz")  # a data set that is not ASR audio
    page.fill("#param-limit", "1")
    page.click("#eval-start")
    page.wait_for_selector("[data-testid=eval-failure]", timeout=120_000)
    text = page.inner_text("[data-testid=eval-failure]")
    assert text.startswith("评测") and "Traceback" not in text and "╭" not in text and "Invalid value" not in text
    assert not page.locator("#eval-metrics details[open]").count()  # the technical log stays folded
    shot(page, "eval-failed")
    assert not page.errors, page.errors
