"""Tenant settings: the facts of one hotline centre that code must not hard-wire.

A tenant's lexicon base terms, its districts and gazetteer (district → towns and streets), every number of its
contract's 业务考核办法, its time zone, working hours and SLA days, and whether knowledge changes need a second
approver.  They live in one row per tenant (``tenant_settings``, JSON validated by :class:`TenantSettings`); a
tenant without a row has the defaults, which carry no city's data.  This module is the only reader: everything
else asks :func:`get` (cached per tenant for ``CACHE_SECONDS``; a save here clears the cache at once, other
processes see it within that time) or the helpers below.

Times are stored in UTC everywhere; :func:`zone` is the tenant's zone for showing them, for its calendar days
("today" in a report) and for its ticket numbers.
"""
from __future__ import annotations

import threading
import time as _time
import weakref
from datetime import date, datetime, time, timezone
from typing import Literal
from zoneinfo import ZoneInfo, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from domain.models import TenantSettingsRow, utcnow
from domain.validation import ShortText

DEFAULT_TIME_ZONE = "Asia/Shanghai"
CACHE_SECONDS = 30.0

Rounding = Literal["ceil", "floor", "proportional"]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LexiconSettings(_Group):
    base_terms: list[ShortText] = Field(default_factory=list, max_length=5000,
                                        description="识别热词基础词表：地名、部门名、政策用语，每个 2–20 个字")

    @field_validator("base_terms")
    @classmethod
    def _terms(cls, terms: list[str]) -> list[str]:
        out: dict[str, None] = {}
        for term in terms:
            term = term.strip()
            if not term:
                continue
            if not 2 <= len(term) <= 20:
                raise ValueError(f"热词“{term}”长度应为 2–20 个字")
            out[term] = None
        return list(out)


class PlaceSettings(_Group):
    districts: list[ShortText] = Field(default_factory=list, max_length=200, description="辖区（县、市、区）")
    gazetteer: dict[ShortText, list[ShortText]] = Field(default_factory=dict,
                                                        description="地名库：每个辖区下的乡镇、街道")

    @field_validator("districts")
    @classmethod
    def _districts(cls, districts: list[str]) -> list[str]:
        names = [d.strip() for d in districts if d.strip()]
        if len(set(names)) != len(names):
            raise ValueError("辖区名称不能重复")
        if any(len(d) > 50 for d in names):
            raise ValueError("辖区名称不能超过 50 个字")
        return names

    @model_validator(mode="after")
    def _gazetteer_in_districts(self) -> PlaceSettings:
        unknown = [d for d in self.gazetteer if d not in self.districts]
        if unknown:
            raise ValueError(f"地名库中的“{unknown[0]}”不在辖区列表中")
        for district, places in self.gazetteer.items():
            if any(not p.strip() or len(p) > 50 for p in places):
                raise ValueError(f"“{district}”下的乡镇街道名称不能为空或超过 50 个字")
        return self


class KpiSettings(_Group):
    """The contract's numbers (业务考核办法) that ``qa.kpi`` scores a month with."""

    contract_total_cny: float = Field(0.0, ge=0, description="合同总额（元）；月服务费 = 合同总额 ÷ 合同月数 × 等级系数")
    contract_months: int = Field(36, ge=1, le=240, description="合同月数")
    complaint_threshold_permille: float = Field(2.0, ge=0, le=1000, description="服务投诉量阈值（‰，按话务量计）")
    contract_headcount: int = Field(27, ge=1, description="合同约定人数（人员流失率的分母）")
    satisfied_min_rating: int = Field(4, ge=1, le=5, description="评分不低于此值计为满意")
    abandon_short_s: int = Field(20, ge=0, le=600, description="排队此秒数内挂机的来电不计入人工接通率")
    step_rounding: Rounding = Field("ceil", description="不足一档的扣分：ceil 按整档扣，floor 不扣，proportional 按比例扣")
    bonus_cap: float = Field(5.0, ge=0, le=100, description="奖惩加分上限（分）")
    fee_decimals: int = Field(2, ge=0, le=4, description="服务费保留小数位数")


class TimeSettings(_Group):
    time_zone: ShortText = Field(DEFAULT_TIME_ZONE, description="时区（IANA 名称，如 Asia/Shanghai）")
    working_hours: list[ShortText] = Field(["00:00-24:00"], max_length=24,
                                           description="人工服务时间（每行一段，如 08:00-12:00）；其余时间来电播放下班提示")
    sla_days: float = Field(5.0, gt=0, le=365, description="未单独规定时限的工单，办理时限（天）")
    working_days_only: bool = Field(False, description="办理时限只计工作日")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str) -> str:
        if name not in available_timezones():
            raise ValueError(f"未知时区“{name}”，请填写 IANA 时区名称，如 Asia/Shanghai")
        return name

    @field_validator("working_hours")
    @classmethod
    def _ranges(cls, ranges: list[str]) -> list[str]:
        out = []
        for text in ranges:
            text = text.strip().replace("－", "-").replace("—", "-")
            try:
                start, end = (_clock(part) for part in text.split("-"))
            except ValueError:
                raise ValueError(f"人工服务时间“{text}”应写成 时:分-时:分，如 08:00-12:00") from None
            if end <= start:
                raise ValueError(f"人工服务时间“{text}”的结束必须晚于开始")
            out.append(f"{start:%H:%M}-{'24:00' if end == time.max else f'{end:%H:%M}'}")
        return out

    def is_working(self, at: datetime) -> bool:
        """``at`` (any zone) falls in the working hours, read on the tenant's clock."""
        t = at.astimezone(ZoneInfo(self.time_zone)).time()
        return any(_clock(start) <= t < _clock(end) for start, end in (r.split("-") for r in self.working_hours))


def _clock(text: str) -> time:
    """HH:MM, where 24:00 is the end of the day."""
    return time.max if text.strip() == "24:00" else time.fromisoformat(text.strip())


class KnowledgeSettings(_Group):
    kb_four_eyes: bool = Field(False, description="知识库变更须由另一名管理员审核后发布")


class TenantSettings(_Group):
    lexicon: LexiconSettings = LexiconSettings()
    places: PlaceSettings = PlaceSettings()
    kpi: KpiSettings = KpiSettings()
    time: TimeSettings = TimeSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time.time_zone)


GROUPS: dict[str, type[_Group]] = {name: f.annotation for name, f in TenantSettings.model_fields.items()}

# per database engine (tests and tools open several), per tenant: (expiry on the monotonic clock, settings)
_cache: weakref.WeakKeyDictionary[Engine, dict[int, tuple[float, TenantSettings]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _tenants(session: Session) -> dict[int, tuple[float, TenantSettings]]:
    engine = session.get_bind()
    with _lock:
        return _cache.setdefault(engine, {})


def get(session: Session, tenant_id: int) -> TenantSettings:
    """The tenant's settings (defaults where it has no row)."""
    cached, now = _tenants(session), _time.monotonic()
    hit = cached.get(tenant_id)
    if hit and hit[0] > now:
        return hit[1]
    row = session.get(TenantSettingsRow, tenant_id)
    settings = TenantSettings.model_validate(row.data) if row else TenantSettings()
    cached[tenant_id] = (now + CACHE_SECONDS, settings)
    return settings


def update(session: Session, tenant_id: int, group: str, value: BaseModel) -> TenantSettings:
    """Replace one group of the tenant's settings, read from its row under a lock (not from the cache, which another
    process's save may have outdated), and store them."""
    row = session.get(TenantSettingsRow, tenant_id, with_for_update=True, populate_existing=True)
    current = TenantSettings.model_validate(row.data) if row else TenantSettings()
    return save(session, tenant_id, current.model_copy(update={group: value}))


def save(session: Session, tenant_id: int, settings: TenantSettings) -> TenantSettings:
    """Store the tenant's settings (in the caller's transaction) and forget the cached copy."""
    row = session.get(TenantSettingsRow, tenant_id)
    data = settings.model_dump(mode="json")
    if row is None:
        session.add(TenantSettingsRow(tenant_id=tenant_id, data=data, updated_at=utcnow()))
    else:
        row.data, row.updated_at = data, utcnow()
    session.flush()
    _tenants(session).pop(tenant_id, None)
    return settings


def zone(session: Session, tenant_id: int) -> ZoneInfo:
    return get(session, tenant_id).zone


def gazetteer(session: Session, tenant_id: int) -> dict[str, list[str]]:
    """District → its towns and streets; every district is a key (an empty list where none are listed)."""
    places = get(session, tenant_id).places
    return {d: list(places.gazetteer.get(d, [])) for d in places.districts}


def local_now(tz: ZoneInfo) -> datetime:
    return datetime.now(timezone.utc).astimezone(tz)


def day_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants of local midnight at ``start`` and at ``end`` (so [start, end) in local days)."""
    return (datetime.combine(start, time(), tz).astimezone(timezone.utc),
            datetime.combine(end, time(), tz).astimezone(timezone.utc))


def local(dt: datetime, tz: ZoneInfo) -> datetime:
    """A stored time (UTC; naive where the database drops the offset) in the tenant's zone."""
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(tz)


def isoformat(dt: datetime | None, tz: ZoneInfo) -> str | None:
    """How the API writes a time: ISO 8601 with the tenant's offset, e.g. 2026-12-07T09:30:00+08:00."""
    return local(dt, tz).isoformat(timespec="seconds") if dt else None

