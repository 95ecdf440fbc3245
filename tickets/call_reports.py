"""Call-traffic reports by day, week and month over the CDRs (domain.models.Call), as JSON with a chart
specification and as XLSX, and the supervisors' dashboard (served by serving/api/call_reports.py).

Periods are calendar days/weeks/months in the tenant's time zone (``domain.tenant_settings``).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import spreadsheet, tenant_settings
from domain.errors import AppError
from domain.models import (Agent, Call, KnowledgeEntry, KnowledgeVersion, KpiMonth, Recording, SkillGroup, Ticket,
                           TranscriptSegment)
from domain.pii import mask_pii

SERVICE_LEVEL_WAIT_MS = 20_000  # answered within 20 s of queueing counts towards the service level
# IVR rating after the call, 1–5; "satisfied" uses the tenant's KPI threshold so the report and 按键满意率 agree
SATISFACTION_LABELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
LOST_RESULTS = {"lost", "abandoned"}  # reached the queue or an agent, then dropped: 漏话
Period = Literal["day", "week", "month"]


@dataclass
class Report:
    title: str
    columns: list[tuple[str, str]]
    rows: list[dict]
    chart: dict | None = None


@dataclass(frozen=True)
class Scope:
    """The tenant a report is built for: its database session, time zone and "satisfied" rating."""

    session: Session
    tz: ZoneInfo
    satisfied_min_rating: int

    @classmethod
    def of(cls, session: Session, tenant_id: int) -> Scope:
        own = tenant_settings.get(session, tenant_id)
        return cls(session, own.zone, own.kpi.satisfied_min_rating)

    def local(self, dt: datetime) -> datetime:
        return tenant_settings.local(dt, self.tz)

    def satisfaction_rate(self, rated: list[int]) -> float | None:
        return _pct(sum(r >= self.satisfied_min_rating for r in rated), len(rated))


def period_bounds(period: Period, anchor: date) -> tuple[date, date]:
    """First day and the day after the last day of the period containing ``anchor``."""
    if period == "day":
        return anchor, anchor + timedelta(days=1)
    if period == "week":
        start = anchor - timedelta(days=anchor.weekday())
        return start, start + timedelta(days=7)
    start = anchor.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _avg_s(values: list[int]) -> float | None:
    return round(sum(values) / len(values) / 1000, 1) if values else None


def _talk_ms(call: Call) -> int | None:
    if call.answered_at and call.ended_at:
        return max(0, int((call.ended_at - call.answered_at).total_seconds() * 1000))
    return None


def _summary(calls: list[Call], scope: Scope) -> dict:
    answered = [c for c in calls if c.answered_at]
    rated = [c.satisfaction for c in calls if c.satisfaction is not None]
    return {
        "offered": len(calls),
        "answered": len(answered),
        "answer_rate": _pct(len(answered), len(calls)),
        "abandoned": sum(c.result in ("abandoned", "abandoned_short") for c in calls),
        "lost": sum(c.result in LOST_RESULTS for c in calls),
        "service_level": _pct(sum(c.queue_wait_ms <= SERVICE_LEVEL_WAIT_MS for c in answered), len(answered)),
        "avg_wait_s": _avg_s([c.queue_wait_ms for c in calls if c.result != "blocked"]),
        "avg_talk_s": _avg_s([t for c in answered if (t := _talk_ms(c)) is not None]),
        "satisfaction_rate": scope.satisfaction_rate(rated),
    }


SUMMARY_COLUMNS = [("offered", "呼入量"), ("answered", "接通量"), ("answer_rate", "接通率%"), ("abandoned", "放弃量"),
                   ("lost", "漏话量"), ("service_level", "20秒服务水平%"), ("avg_wait_s", "平均等待(秒)"),
                   ("avg_talk_s", "平均通话(秒)"), ("satisfaction_rate", "满意率%")]


def _bar_line(x: list[str], bars: dict[str, list], line: tuple[str, list] | None = None) -> dict:
    series = [{"name": name, "type": "bar", "data": data} for name, data in bars.items()]
    if line:
        series.append({"name": line[0], "type": "line", "yAxisIndex": 1, "data": line[1]})
    return {"x": x, "series": series, "percent_axis": line is not None}


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def daily_ops(calls, agents, start, end, scope: Scope) -> Report:
    by_day: dict[date, list[Call]] = defaultdict(list)
    for c in calls:
        by_day[scope.local(c.started_at).date()].append(c)
    rows = [{"day": d.isoformat(), **_summary(by_day[d], scope)} for d in _days(start, end)]
    chart = _bar_line([r["day"][5:] for r in rows], {"呼入量": [r["offered"] for r in rows],
                                                     "接通量": [r["answered"] for r in rows]},
                      ("接通率%", [r["answer_rate"] for r in rows]))
    return Report("每日运营情况", [("day", "日期"), *SUMMARY_COLUMNS], rows, chart)


def _per_agent(calls, agents) -> dict[int, list[Call]]:
    grouped: dict[int, list[Call]] = {a.id: [] for a in agents}
    for c in calls:
        if c.agent_id is not None:
            grouped.setdefault(c.agent_id, []).append(c)
    return grouped


def _agent_label(agents_by_id: dict[int, Agent], agent_id: int) -> str:
    agent = agents_by_id.get(agent_id)
    return f"{agent.work_no}号 {agent.name}" if agent else f"#{agent_id}"


def agent_service(calls, agents, start, end, scope: Scope) -> Report:
    by_id = {a.id: a for a in agents}
    rows = []
    for agent_id, own in _per_agent(calls, agents).items():
        answered = [c for c in own if c.answered_at]
        rated = [c.satisfaction for c in own if c.satisfaction is not None]
        rows.append({
            "agent": _agent_label(by_id, agent_id), "answered": len(answered),
            "service_level": _pct(sum(c.queue_wait_ms <= SERVICE_LEVEL_WAIT_MS for c in answered), len(answered)),
            "avg_talk_s": _avg_s([t for c in answered if (t := _talk_ms(c)) is not None]),
            "avg_hold_s": _avg_s([c.hold_ms for c in answered]),
            "transfers": sum(c.transfers for c in answered),
            "satisfaction_rate": scope.satisfaction_rate(rated),
        })
    chart = _bar_line([r["agent"] for r in rows], {"接听量": [r["answered"] for r in rows]},
                      ("满意率%", [r["satisfaction_rate"] for r in rows]))
    return Report("坐席服务水平", [("agent", "坐席"), ("answered", "接听量"), ("service_level", "20秒服务水平%"),
                                ("avg_talk_s", "平均通话(秒)"), ("avg_hold_s", "平均保持(秒)"),
                                ("transfers", "转接次数"), ("satisfaction_rate", "满意率%")], rows, chart)


def overall(calls, agents, start, end, scope: Scope) -> Report:
    summary = _summary(calls, scope)
    by_result: dict[str, int] = defaultdict(int)
    labels = {"answered": "接通", "abandoned": "排队放弃", "abandoned_short": "短时放弃", "lost": "振铃未接",
              "blocked": "黑名单拦截", "out_of_hours": "非工作时间", "": "未记录"}
    for c in calls:
        by_result[labels.get(c.result, c.result)] += 1
    chart = {"pie": [{"name": k, "value": v} for k, v in sorted(by_result.items(), key=lambda kv: -kv[1])]}
    return Report("整体话务", [("period", "统计周期"), *SUMMARY_COLUMNS],
                  [{"period": f"{start.isoformat()} 至 {(end - timedelta(days=1)).isoformat()}", **summary}], chart)


def hourly(calls, agents, start, end, scope: Scope) -> Report:
    by_hour: dict[int, list[Call]] = defaultdict(list)
    for c in calls:
        by_hour[scope.local(c.started_at).hour].append(c)
    rows = [{"hour": f"{h:02d}:00", **_summary(by_hour[h], scope)} for h in range(24)]
    chart = _bar_line([r["hour"] for r in rows], {"呼入量": [r["offered"] for r in rows],
                                                 "接通量": [r["answered"] for r in rows]},
                      ("接通率%", [r["answer_rate"] for r in rows]))
    return Report("分时话务", [("hour", "时段"), *SUMMARY_COLUMNS], rows, chart)


def skill_group(calls, agents, start, end, scope: Scope) -> Report:
    groups: dict[str, list[Call]] = defaultdict(list)
    for c in calls:
        groups[c.skill_group or "未分组"].append(c)
    rows = [{"skill_group": name, **_summary(own, scope)} for name, own in sorted(groups.items())]
    chart = _bar_line([r["skill_group"] for r in rows], {"呼入量": [r["offered"] for r in rows],
                                                        "接通量": [r["answered"] for r in rows]},
                      ("接通率%", [r["answer_rate"] for r in rows]))
    return Report("技能组话务", [("skill_group", "技能组"), *SUMMARY_COLUMNS], rows, chart)


def agent_traffic(calls, agents, start, end, scope: Scope) -> Report:
    by_id = {a.id: a for a in agents}
    rows = []
    for agent_id, own in _per_agent(calls, agents).items():
        talks = [t for c in own if (t := _talk_ms(c)) is not None]
        rows.append({"agent": _agent_label(by_id, agent_id),
                     "inbound": sum(c.direction == "in" and c.answered_at is not None for c in own),
                     "outbound": sum(c.direction == "out" for c in own),
                     "missed": sum(c.result in LOST_RESULTS for c in own),
                     "talk_min": round(sum(talks) / 60000, 1), "avg_talk_s": _avg_s(talks)})
    chart = _bar_line([r["agent"] for r in rows], {"呼入接听": [r["inbound"] for r in rows],
                                                  "外呼": [r["outbound"] for r in rows]})
    return Report("坐席话务", [("agent", "坐席"), ("inbound", "呼入接听"), ("outbound", "外呼"), ("missed", "漏接"),
                            ("talk_min", "通话总时长(分)"), ("avg_talk_s", "平均通话(秒)")], rows, chart)


def satisfaction(calls, agents, start, end, scope: Scope) -> Report:
    by_day: dict[date, list[int]] = defaultdict(list)
    for c in calls:
        if c.satisfaction is not None:
            by_day[scope.local(c.started_at).date()].append(c.satisfaction)
    rows = []
    for d in _days(start, end):
        rated = by_day[d]
        row = {"day": d.isoformat(), "rated": len(rated)}
        for key, label in SATISFACTION_LABELS.items():
            row[label] = sum(r == key for r in rated)
        row["satisfaction_rate"] = scope.satisfaction_rate(rated)
        rows.append(row)
    chart = _bar_line([r["day"][5:] for r in rows], {label: [r[label] for r in rows]
                                                     for label in SATISFACTION_LABELS.values()},
                      ("满意率%", [r["satisfaction_rate"] for r in rows]))
    return Report("客户满意率", [("day", "日期"), ("rated", "评价数"),
                              *[(label, label) for label in SATISFACTION_LABELS.values()],
                              ("satisfaction_rate", "满意率%")], rows, chart)


_RESULT_ZH = {"abandoned": "排队放弃", "abandoned_short": "短时放弃", "lost": "振铃未接", "out_of_hours": "非工作时间",
              "blocked": "黑名单拦截"}
_LIST_COLUMNS = [("time", "来电时间"), ("caller", "来电号码"), ("skill_group", "技能组"), ("wait_s", "等待(秒)"),
                 ("result", "结果"), ("reason", "原因")]


def _call_row(c: Call, scope: Scope) -> dict:
    return {"time": scope.local(c.started_at).strftime("%Y-%m-%d %H:%M:%S"), "caller": mask_pii(c.caller_number),
            "skill_group": c.skill_group, "wait_s": round(c.queue_wait_ms / 1000, 1),
            "result": _RESULT_ZH.get(c.result, c.result), "reason": c.lost_reason}


def _hourly_counts(calls: list[Call], scope: Scope) -> dict:
    counts = [0] * 24
    for c in calls:
        counts[scope.local(c.started_at).hour] += 1
    return _bar_line([f"{h:02d}" for h in range(24)], {"数量": counts})


def lost(calls, agents, start, end, scope: Scope) -> Report:
    rows_calls = [c for c in calls if c.result in LOST_RESULTS]
    return Report("漏话", _LIST_COLUMNS, [_call_row(c, scope) for c in rows_calls], _hourly_counts(rows_calls, scope))


def unanswered(calls, agents, start, end, scope: Scope) -> Report:
    rows_calls = [c for c in calls if c.answered_at is None and c.direction == "in" and c.result != "blocked"]
    return Report("未接来电", _LIST_COLUMNS, [_call_row(c, scope) for c in rows_calls], _hourly_counts(rows_calls, scope))


def voicemail(calls, agents, start, end, scope: Scope) -> Report:
    """Messages left by callers nobody answered: an unanswered call that has a recording."""
    ids = [c.id for c in calls if c.answered_at is None]
    recordings = {r.call_id: r for r in scope.session.scalars(select(Recording).where(Recording.call_id.in_(ids)))} \
        if ids else {}
    rows = [{**_call_row(c, scope), "duration_s": round(recordings[c.id].duration_ms / 1000, 1),
             "recording_id": recordings[c.id].id} for c in calls if c.id in recordings]
    return Report("客户留言", [*_LIST_COLUMNS[:3], ("result", "结果"), ("duration_s", "留言时长(秒)"),
                            ("recording_id", "录音编号")], rows,
                  _hourly_counts([c for c in calls if c.id in recordings], scope))


REPORTS: dict[str, Callable[..., Report]] = {
    "daily_ops": daily_ops, "agent_service": agent_service, "overall": overall, "hourly": hourly,
    "skill_group": skill_group, "agent_traffic": agent_traffic, "satisfaction": satisfaction,
    "lost": lost, "voicemail": voicemail, "unanswered": unanswered,
}
REPORT_TITLES = {"daily_ops": "每日运营情况", "agent_service": "坐席服务水平", "overall": "整体话务", "hourly": "分时话务",
                 "skill_group": "技能组话务", "agent_traffic": "坐席话务", "satisfaction": "客户满意率", "lost": "漏话",
                 "voicemail": "客户留言", "unanswered": "未接来电"}
PERIOD_ZH = {"day": "日报", "week": "周报", "month": "月报"}


def _group_names(session: Session, tenant_id: int) -> dict[str, str]:
    return dict(session.execute(select(SkillGroup.code, SkillGroup.name).where(SkillGroup.tenant_id == tenant_id)).all())


def build_report(session: Session, tenant_id: int, name: str, period: Period, anchor: date | None = None) -> dict:
    """The report of the period containing ``anchor`` (default: today in the tenant's zone)."""
    if name not in REPORTS:
        raise AppError("unknown_report", f"没有名为 {name} 的报表", 404)
    scope = Scope.of(session, tenant_id)
    start, end = period_bounds(period, anchor or tenant_settings.local_now(scope.tz).date())
    lo, hi = tenant_settings.day_bounds(start, end, scope.tz)
    calls = list(session.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.started_at >= lo,
                                                    Call.started_at < hi).order_by(Call.started_at)))
    agents = list(session.scalars(select(Agent).where(Agent.tenant_id == tenant_id).order_by(Agent.work_no)))
    report = REPORTS[name](calls, agents, start, end, scope)
    names = _group_names(session, tenant_id)
    for row in report.rows:
        if "skill_group" in row:
            row["skill_group"] = names.get(row["skill_group"], row["skill_group"])
    if report.chart and name == "skill_group":
        report.chart["x"] = [names.get(x, x) for x in report.chart["x"]]
    return {"name": name, "title": report.title, "period": period, "period_label": PERIOD_ZH[period],
            "start": start.isoformat(), "end": (end - timedelta(days=1)).isoformat(),
            "columns": [{"key": k, "label": label} for k, label in report.columns],
            "rows": report.rows, "chart": report.chart}


def to_xlsx(report: dict) -> bytes:
    heading = f"{report['title']}（{report['period_label']}） {report['start']} 至 {report['end']}"
    return spreadsheet.to_xlsx([spreadsheet.Sheet(
        report["title"], [c["label"] for c in report["columns"]],
        [[row.get(c["key"]) for c in report["columns"]] for row in report["rows"]], heading)])


HOT_WORD_DAYS = 7
HOT_WORDS = 30
HOT_WORD_STOPWORDS = frozenset({"咨询", "办理", "反映", "要求", "问题", "市民", "希望", "情况", "相关", "部门", "处理",
                                "请求", "表示", "进行", "需要", "知道", "时间", "电话"})


_HOT_TERM = re.compile(r"[\u4e00-\u9fff]{2,8}")  # a word of Chinese text: not "2个工作日", not a code


def _category_words(category: str) -> list[str]:
    """The names below a category's top level (城乡建设/市政设施/路灯 → 市政设施, 路灯): the top level is a series
    of the trend chart, not a hot word."""
    return [p.strip() for p in (category or "").replace(">", "/").split("/")[1:] if p.strip()]


def hot_word_vocabulary(session: Session, tenant_id: int, categories: list[str]) -> set[str]:
    """What may be a hot word: the published knowledge base's keywords and category names and the categories of
    the tickets, the centre's own words (never fragments the recogniser misheard, such as 鸟鸟 or 秘股)."""
    rows = session.execute(select(KnowledgeVersion.keywords, KnowledgeVersion.category).join(
        KnowledgeEntry, (KnowledgeEntry.id == KnowledgeVersion.entry_id)
        & (KnowledgeEntry.published_version == KnowledgeVersion.version))
        .where(KnowledgeEntry.tenant_id == tenant_id, KnowledgeEntry.status != "archived"))
    terms: set[str] = set()
    for keywords, category in rows:
        terms.update(k.strip() for k in keywords or [] if isinstance(k, str))
        terms.update(_category_words(category))
    for category in categories:
        terms.update(_category_words(category))
    return {t for t in terms if _HOT_TERM.fullmatch(t) and t not in HOT_WORD_STOPWORDS}


def hot_words(texts: list[str], vocabulary: set[str], top: int = HOT_WORDS) -> list[dict]:
    """The vocabulary's words citizens raise most: in how many texts each occurs (the longest word where words
    overlap, 社保卡 rather than 社保)."""
    if not vocabulary:
        return []
    pattern = re.compile("|".join(re.escape(t) for t in sorted(vocabulary, key=len, reverse=True)))
    counts: dict[str, int] = defaultdict(int)
    for text in texts:
        for word in set(pattern.findall(text or "")):
            counts[word] += 1
    return [{"name": w, "value": n} for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))[:top]]


def dashboard(session: Session, tenant_id: int) -> dict:
    scope = Scope.of(session, tenant_id)
    now = tenant_settings.local_now(scope.tz)
    today = now.date()
    day_lo, _ = tenant_settings.day_bounds(today, today, scope.tz)
    week_lo = day_lo - timedelta(days=HOT_WORD_DAYS - 1)
    month_lo, _ = tenant_settings.day_bounds(today.replace(day=1), today, scope.tz)
    calls = list(session.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.started_at >= month_lo)))
    today_calls = [c for c in calls if scope.local(c.started_at).date() == today]
    agents = list(session.scalars(select(Agent).where(Agent.tenant_id == tenant_id)))
    states: dict[str, int] = defaultdict(int)
    for a in agents:
        states[a.state] += 1
    by_hour = [0] * 24
    for c in today_calls:
        by_hour[scope.local(c.started_at).hour] += 1
    district_counts = {d: 0 for d in tenant_settings.get(session, tenant_id).places.districts}
    for c in calls:
        if c.district:
            district_counts[c.district] = district_counts.get(c.district, 0) + 1
    tickets = list(session.scalars(select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.created_at >= week_lo)))
    days = [today - timedelta(days=i) for i in range(HOT_WORD_DAYS - 1, -1, -1)]
    trend: dict[str, list[int]] = defaultdict(lambda: [0] * HOT_WORD_DAYS)
    ticketed = {t.call_id for t in tickets if t.call_id}
    untracked = session.scalars(select(Call).where(Call.tenant_id == tenant_id, Call.started_at >= week_lo,
                                                   Call.category != ""))  # the copilot's category: no ticket made
    dated = [(t.category, t.created_at) for t in tickets] + [(c.category, c.started_at) for c in untracked
                                                              if c.id not in ticketed]
    for category, at in dated:
        top_category = (category or "未分类").replace(">", "/").split("/")[0].strip() or "未分类"
        index = (scope.local(at).date() - days[0]).days
        if 0 <= index < HOT_WORD_DAYS:
            trend[top_category][index] += 1
    top_categories = sorted(trend, key=lambda k: -sum(trend[k]))[:6]
    texts = [t.summary for t in tickets if t.summary]
    texts += list(session.scalars(select(TranscriptSegment.text).where(
        TranscriptSegment.tenant_id == tenant_id, TranscriptSegment.speaker_role == "caller",
        TranscriptSegment.is_final.is_(True), TranscriptSegment.created_at >= day_lo).limit(2000)))
    names = _group_names(session, tenant_id)
    kpi = session.scalar(select(KpiMonth).where(KpiMonth.tenant_id == tenant_id).order_by(KpiMonth.month.desc()))
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "today": _summary(today_calls, scope),
        "month": _summary(calls, scope),
        "live": {"in_progress": sum(c.ended_at is None for c in calls),
                 "queued": sum(c.ended_at is None and c.answered_at is None for c in calls),
                 "agents": dict(states), "agents_total": len(agents),
                 "agent_list": [{"id": a.id, "work_no": a.work_no, "name": a.name, "state": a.state,
                                 "state_since": tenant_settings.isoformat(a.state_since, scope.tz)} for a in agents],
                 "queues": [{**q, "skill_group": names.get(q["skill_group"], q["skill_group"])}
                            for q in _queues(calls, now, scope)]},
        "hourly": {"x": [f"{h:02d}" for h in range(24)], "offered": by_hour},
        "districts": [{"name": k, "value": v} for k, v in district_counts.items()],
        "hot_words": hot_words(texts + [t.category for t in tickets if t.category],
                               hot_word_vocabulary(session, tenant_id, [t.category for t in tickets])),
        "category_trend": {"x": [d.strftime("%m-%d") for d in days],
                           "series": [{"name": k, "data": trend[k]} for k in top_categories]},
        "kpi": {"month": kpi.month, "total_score": kpi.total_score, "coefficient": kpi.coefficient,
                "fee_cny": kpi.fee_cny} if kpi else None,
    }


def _queues(calls: list[Call], now: datetime, scope: Scope) -> list[dict]:
    waiting: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        if c.ended_at is None and c.answered_at is None:
            waiting[c.skill_group or "未分组"].append((now - scope.local(c.started_at)).total_seconds())
    return [{"skill_group": k, "waiting": len(v), "longest_wait_s": round(max(v))} for k, v in sorted(waiting.items())]
