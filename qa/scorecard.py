"""Scorecards: typed definition, file loading (YAML/JSON) and versioned per-tenant storage.

A scorecard lists items; each item has a weight, a severity (serious = 严重违规, minor) and
either ``require`` (the condition must hold) or ``forbid`` (it must not), optionally only
``applies_if`` another condition holds.  Thresholds are named, typed ``params``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.models import Scorecard as ScorecardRow

DEFAULT_PATH = Path(__file__).with_name("scorecards") / "default_12345.yaml"


class Param(BaseModel):
    type: Literal["int", "float"]
    value: float
    min: float | None = None
    max: float | None = None
    step: float | None = None
    description: str = ""

    @model_validator(mode="after")
    def _typed(self) -> "Param":
        if self.type == "int":
            self.value = int(self.value)
        if self.min is not None and self.value < self.min or self.max is not None and self.value > self.max:
            raise ValueError(f"value {self.value} outside [{self.min}, {self.max}]")
        return self

    def grid(self) -> list[float]:
        if self.min is None or self.max is None or not self.step:
            raise ValueError("tuning needs min, max and step")
        n = int(round((self.max - self.min) / self.step)) + 1
        vals = [self.min + i * self.step for i in range(n)]
        return [int(v) for v in vals] if self.type == "int" else [round(v, 6) for v in vals]


class LiveHint(BaseModel):
    """When the live checker should warn the agent that this item is still unmet."""
    message: str
    after_ms: int | None = None  # unmet this long into the call
    when: dict | None = None  # or as soon as this condition holds (e.g. a closing phrase starts)


class Item(BaseModel):
    code: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    weight: float = Field(ge=0)
    severity: Literal["serious", "minor"]
    require: dict | None = None
    forbid: dict | None = None
    applies_if: dict | None = None
    label: str | None = None  # the labelled field this item is compared with in `hotline eval calls`
    live: LiveHint | None = None
    routing_kb_query: str | None = None  # a failure is also an answer (routing) error against this KB topic
    # with routing_kb_query: the agent told the caller to report it themselves (a failure is then "self_referred",
    # not "refused")
    self_referral: dict | None = None
    # a failure where this condition holds goes to a person (needs review, not deducted): what the ASR wrote shows
    # the words were said but misheard (化物业 for 话务员, with no work number found)
    review_if: dict | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_rule(self) -> "Item":
        if (self.require is None) == (self.forbid is None):
            raise ValueError(f"item {self.code}: give exactly one of require / forbid")
        return self


class ScorecardDef(BaseModel):
    name: str
    version: int = 1
    title: str = ""
    similarity: Literal["embedder", "char_ngram"] = "embedder"
    merge_gap_ms: int = Field(1500, ge=0, description="same-role segments closer than this are one turn")
    params: dict[str, Param] = Field(default_factory=dict)
    items: list[Item]

    @model_validator(mode="after")
    def _unique(self) -> "ScorecardDef":
        codes = [i.code for i in self.items]
        if len(codes) != len(set(codes)):
            raise ValueError("item codes must be unique")
        if not any(i.weight for i in self.items):
            raise ValueError("at least one item needs a weight")
        return self

    def param_values(self, overrides: dict[str, float] | None = None) -> dict[str, Any]:
        values = {k: p.value for k, p in self.params.items()}
        for k, v in (overrides or {}).items():
            if k not in self.params:
                raise KeyError(f"unknown parameter {k}")
            values[k] = int(v) if self.params[k].type == "int" else float(v)
        return values

    def with_params(self, values: dict[str, float]) -> "ScorecardDef":
        data = self.model_dump()
        for k, v in self.param_values(values).items():
            data["params"][k]["value"] = v
        return ScorecardDef.model_validate(data)


class ScorecardError(ValueError):
    """Readable scorecard problem (shown to the user in Chinese by the API/CLI)."""


def parse(data: dict) -> ScorecardDef:
    try:
        card = ScorecardDef.model_validate(data)
    except ValidationError as exc:
        raise ScorecardError(f"评分表格式错误：{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") from exc
    _check_conditions(card)
    return card


def _check_conditions(card: ScorecardDef) -> None:
    from qa.rules import OPERATORS

    def walk(cond: Any, where: str) -> None:
        if isinstance(cond, dict):
            if "op" in cond and cond["op"] not in OPERATORS:
                raise ScorecardError(f"评分表格式错误：{where} 使用了未知算子 {cond['op']}")
            for key, value in cond.items():
                if isinstance(value, str) and value.startswith("$") and value[1:] not in card.params:
                    raise ScorecardError(f"评分表格式错误：{where} 引用了未定义的参数 {value}")
                walk(value, where)
        elif isinstance(cond, list):
            for v in cond:
                walk(v, where)

    for item in card.items:
        walk([item.require, item.forbid, item.applies_if, item.self_referral, item.live.when if item.live else None,
              item.review_if], item.code)


def load_file(path: str | Path) -> ScorecardDef:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScorecardError(f"无法读取评分表文件：{path}") from exc
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml/json syntax errors of any kind
        raise ScorecardError(f"评分表文件无法解析：{path}：{exc}") from exc
    if not isinstance(data, dict):
        raise ScorecardError("评分表文件顶层必须是映射")
    return parse(data)


def default_scorecard() -> ScorecardDef:
    return load_file(DEFAULT_PATH)


# ------------------------------------------------------------------ storage (domain.models.Scorecard)
def save(session: Session, tenant_id: int, card: ScorecardDef, activate: bool = True) -> ScorecardRow:
    """Store ``card`` as the next version of its name for this tenant."""
    latest = session.scalar(select(func.max(ScorecardRow.version)).where(
        ScorecardRow.tenant_id == tenant_id, ScorecardRow.name == card.name)) or 0
    card = card.model_copy(update={"version": latest + 1})
    if activate:
        for row in session.scalars(select(ScorecardRow).where(
                ScorecardRow.tenant_id == tenant_id, ScorecardRow.name == card.name)):
            row.active = False
    row = ScorecardRow(tenant_id=tenant_id, name=card.name, version=card.version,
                       definition=card.model_dump(mode="json"), active=activate)
    session.add(row)
    session.flush()
    return row


def active(session: Session, tenant_id: int, name: str | None = None) -> ScorecardRow | None:
    q = select(ScorecardRow).where(ScorecardRow.tenant_id == tenant_id, ScorecardRow.active.is_(True))
    if name:
        q = q.where(ScorecardRow.name == name)
    return session.scalars(q.order_by(ScorecardRow.id.desc())).first()


def from_row(row: ScorecardRow) -> ScorecardDef:
    return parse(row.definition)
