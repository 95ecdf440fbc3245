"""The alert rules and the dashboard: promtool loads the rules and its unit tests make every alert fire (and stay
quiet where it should); every metric they use is one the API really exports at /metrics, read here from a real
app whose database holds the calls, SMS and integration messages the gauges count."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from domain.db import session_scope
from domain.models import Call, OutboxMessage, SmsMessage, Tenant, utcnow

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
needs_promtool = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (apt prometheus) not installed")
BUILTIN = {"up"}


def _metric_names(expr: str) -> set[str]:
    return {m for m in re.findall(r"\b(hotline_[a-z0-9_]+|up)\b", expr)}


def _rule_metrics() -> set[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return set().union(*(_metric_names(r["expr"]) for g in rules["groups"] for r in g["rules"]))


def _dashboard_metrics() -> set[str]:
    dash = json.loads((DEPLOY / "grafana" / "hotline.json").read_text())
    return set().union(*(_metric_names(t["expr"]) for p in dash["panels"] for t in p["targets"]))


@needs_promtool
def test_rules_load_and_every_alert_fires_in_promtool_unit_tests():
    check = subprocess.run(["promtool", "check", "rules", "alerts.yml"], cwd=DEPLOY / "prometheus",
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "9 rules found" in check.stdout, check.stdout + check.stderr
    tested = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    fired = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:", (DEPLOY / "prometheus" / "alerts_test.yml").read_text()))
    assert fired == alerts  # each alert has a test where it fires
    config = subprocess.run(["promtool", "check", "config", "prometheus.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr


def _value(text: str, sample: str) -> float:
    found = re.search(rf"^{re.escape(sample)} ([\d.e+-]+)$", text, flags=re.M)
    return float(found.group(1)) if found else 0.0


def test_rules_and_dashboard_use_only_exported_metrics(client, app):
    engine = app.state.engine
    now = utcnow()
    with session_scope(engine) as s:
        tenant = s.query(Tenant).first()
        code = tenant.code
    before = client.get("/metrics").text
    with session_scope(engine) as s:
        s.add_all([Call(tenant_id=tenant.id, call_uuid=f"m-{i}", caller_number="13800000000",
                        started_at=now - timedelta(minutes=1), ended_at=now, result="lost" if i < 2 else "answered")
                   for i in range(10)])
        s.add(Call(tenant_id=tenant.id, call_uuid="m-queued", caller_number="13800000001", skill_group="ops-test",
                   started_at=now - timedelta(seconds=30)))
        s.add_all([SmsMessage(tenant_id=tenant.id, idempotency_key=f"sms-{i}", phone="13800000000", body="回访",
                              status="delivered" if i < 3 else "failed") for i in range(4)])
        s.add(OutboxMessage(tenant_id=tenant.id, channel="police110", idempotency_key="o1", payload={}, attempts=2))
    text = client.get("/metrics").text
    exported = set(re.findall(r"^# TYPE (\w+) ", text, flags=re.M))
    exported |= {n + suffix for n in exported for suffix in ("_bucket", "_count", "_sum")}
    used = (_rule_metrics() | _dashboard_metrics()) - BUILTIN
    assert used <= exported, used - exported
    added = {sample: _value(text, sample) - _value(before, sample) for sample in (
        f'hotline_calls_incoming_15m{{tenant="{code}"}}', f'hotline_calls_lost_15m{{tenant="{code}"}}',
        f'hotline_sms_sent_1h{{tenant="{code}"}}', f'hotline_sms_delivered_1h{{tenant="{code}"}}',
        'hotline_outbox_retrying{channel="police110"}')}
    assert list(added.values()) == [11, 2, 4, 3, 1]  # the queued call is incoming too; failed SMS count as sent
    assert 25 < _value(text, f'hotline_queue_oldest_wait_seconds{{skill_group="ops-test",tenant="{code}"}}') < 120
    assert 0 < float(re.search(r"^hotline_data_disk_free_ratio ([\d.e-]+)", text, flags=re.M).group(1)) <= 1


def test_readyz_reports_each_dependency(client, app, settings):
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == {"ok": True} and checks["disk"]["ok"]
    # a registered bridge worker that does not answer makes the bridge not ready, with the reason in Chinese
    run = Path(settings.data_dir) / "telephony"
    run.mkdir(parents=True, exist_ok=True)
    (run / "workers.json").write_text(json.dumps({"workers": [
        {"name": "w1", "sip_port": 1, "rtp_port": 2, "control_port": 9}], "proxy_port": 0}))
    down = client.get("/readyz")
    assert down.status_code == 503
    body = down.json()["error"]
    assert body["code"] == "not_ready" and "桥接工作进程" in body["message"]
    assert body["detail"]["checks"]["bridge_workers"] == {"ok": False, "down": ["w1"]}
    app.state.engine.dispose()
