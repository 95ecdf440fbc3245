"""A ticket draft filled in as the call goes: who is calling, where, about whom, and what they want.

The agent's question tells what the caller's next answer is ("您的联系电话？"
→ a phone number, "事发地点在哪里？" → the incident address), so extraction
looks at the previous agent turn as well as at the caller's own wording.

The summary is written from slots (who, when, where, about whom, what happened, what they ask), not by
pasting what the caller said; addresses are resolved against the tenant's gazetteer
(:mod:`copilot.places`); each field gets a confidence, and the desk asks the agent to confirm a low one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from asr.numbers import spoken_digits
from copilot.places import Gazetteer
from tickets.lifecycle import TicketDraft

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})(?!\d)")
_NAME = re.compile(r"我(?:叫|的名字(?:是|叫))([\u4e00-\u9fff]{2,3}?)(?=[，,。！？\s]|电话|手机|$)")
_SURNAME_FULL = re.compile(r"(?:我)?姓([\u4e00-\u9fff])[，,、\s]*(?:叫)?(\1[\u4e00-\u9fff]{1,2})")
_SURNAME = re.compile(r"(?:我)?姓([\u4e00-\u9fff])(?![\u4e00-\u9fff]{2})")
_PLACE = re.compile(
    r"(?:[\u4e00-\u9fff0-9]{0,12}?(?:市|区|县|镇|乡|街道|村|屯)){0,4}"
    r"[\u4e00-\u9fffA-Za-z0-9]{0,16}?(?:路|街|大道|巷|小区|花园|苑|家园|华庭|广场|市场|工地|大桥|公园|村|屯|镇|站|医院|学校)"
    r"(?:[\u4e00-\u9fff0-9]{0,4}?(?:号|栋|幢|单元|室|楼|层|期|段|门口|旁边|后面|对面|附近))*"
)
_RESPONDENT = re.compile(
    r"([\u4e00-\u9fffA-Za-z0-9]{2,14}?(?:有限公司|公司|物业(?:服务|管理)?(?:有限)?(?:公司)?|家电城|电器城|超市|商场|饭店|餐馆|酒店|粉店|小吃店|店|砖厂|工厂|厂|学校|幼儿园|培训机构|培训班|中介|医院|工地|摊贩|包工头))"
)
_PLATE = re.compile(r"[桂][A-Z][A-Z0-9]{5}")
_ASKS_PHONE = re.compile(r"电话|手机|联系方式|号码")
_ASKS_NAME = re.compile(r"怎么称呼|姓名|贵姓|您姓|名字")
_ASKS_HOME = re.compile(r"住址|住在|家住|您的地址|家庭地址|联系地址|居住")
_ASKS_PLACE = re.compile(r"地点|位置|哪个地方|在哪里|在哪儿|在什么地方|具体地址|哪条路|哪个小区|地址")
_LIVES = re.compile(r"(?:我|我家|我们)?(?:住在|家住|住|家在)")
_LEAD = re.compile(r"^.*(?:住在|家住|住|就在|位于|在|到|从|去|是|叫|那个|这个|那家|这家|一家|一个|那边|这边|旁边|投诉|举报|反映)")
_OWN = re.compile(r"^(?:我们|我家|我|咱们)?(?:小区|村|楼下|楼上|附近|旁边)?(?:的)?")
_WHEN = re.compile(
    r"(今天|昨天|前天|刚才|刚刚|上周|上个月|这几天|最近|好几天|一直|每天|天天|前几天|"
    r"(?:前|这|近|过去)?[0-9一二三四五六七八九十两半]+(?:个)?(?:天|周|星期|礼拜|个月|月|年)(?:了|前|多)?|"
    r"[0-9一二三四五六七八九十]{1,2}月[0-9一二三四五六七八九十]{1,3}[日号]|"
    r"(?:早上|上午|中午|下午|晚上|半夜|凌晨)(?:[0-9一二三四五六七八九十]{1,2}点)?)")
_CLAUSE = re.compile(r"[，,。！？!?；;\s]+")
_OPENING = re.compile(r"^(?:喂|你好|您好|哎|嗯|那个|就是|就是说|是这样的?|我想问一?下|我想咨询一?下|请问|"
                      r"我要(?:投诉|举报|反映)(?:一下)?|我想(?:投诉|举报|反映)(?:一下)?|我跟你说)+")
_PROBLEM = re.compile(r"不见了|丢了|坏了|不亮|没人管|不管|堆|吵|噪音|漏|堵|停水|停电|欠|拖欠|不退|不给|乱收|多收|"
                      r"违法|偷排|占道|危险|臭|脏|打架|被困|着火|冒烟|没有|不能|不行|太差|绕路|拒载")
_REQUEST = re.compile(r"怎么|如何|能不能|可不可以|能否|希望|要求|麻烦|请(?:你们)?|帮(?:我|忙)|派人|处理|"
                      r"要多久|需要什么|去哪|哪里办|多少钱|要不要")
_FILLER_END = re.compile(r"(?:那边|这边|那里|这里|那儿|这儿)$")


@dataclass(frozen=True)
class RequestTypeParams:
    """Ordered keyword rules for 咨询/求助/投诉/举报/建议 (first match wins; default 咨询)."""

    rules: tuple[tuple[str, str], ...] = (
        ("举报", r"举报|偷排|偷偷排|非法|违法经营|黑作坊|无证"),
        ("建议", r"建议|提个意见|能不能(加|增加|多开|延长|设置|安装)|希望(能)?(增加|加|延长|设置|开通)"),
        ("投诉", r"投诉|反映一下|我要反映|让不让人|不满意|太差|欺负人|不给退|不退|拖欠|欠(了)?(我们)?.{0,6}工资|乱收费|扰民|吵得|太吵|吵死|绕路|多收|态度(很|太|特别)?差|没人管|不管|拒载"),
        ("求助", r"怎么办啊|帮帮|救命|急|报修|坏了|不亮|停水|停电|漏气|煤气味|燃气味|漏水|堵了|困难|过不下去|被困"),
    )
    default: str = "咨询"


@dataclass(frozen=True)
class DraftConfidence:
    """How sure the draft is of each way a field was filled (the desk marks below 0.6 as 待确认)."""

    name_said: float = 0.9  # 我叫韦建华
    name_full: float = 0.85  # 我姓韦，韦建华
    surname: float = 0.7  # 我姓韦 → 韦先生/女士
    name_bare: float = 0.5  # a bare answer to 怎么称呼
    phone_asked: float = 0.95  # a mobile number right after the agent asked for it
    phone: float = 0.8
    respondent_plate: float = 0.8
    respondent_named: float = 0.7  # four characters or more (安家物业服务公司)
    respondent_generic: float = 0.5
    request_type_rule: float = 0.8
    request_type_default: float = 0.55
    summary_full: float = 0.8  # what happened and what they ask both found
    summary_partial: float = 0.5
    place_no_gazetteer: float = 0.5


class TicketDrafter:
    def __init__(self, params: RequestTypeParams | None = None, summary_chars: int = 160,
                 gazetteer: Gazetteer | None = None, confidence: DraftConfidence = DraftConfidence()):
        self.params = params or RequestTypeParams()
        self._types = [(name, re.compile(p)) for name, p in self.params.rules]
        self.summary_chars = summary_chars
        self.gazetteer = gazetteer
        self.conf = confidence

    def update(self, draft: TicketDraft, caller_turns: list[str], last_agent_text: str = "",
               confidence: dict[str, float] | None = None, request_type: str | None = None) -> TicketDraft:
        """Refine ``draft`` with the latest of the caller's turns (``caller_turns[-1]``); the request type and
        summary are drawn from all of them, unless the call's ``request_type`` is known otherwise (a 110
        emergency is a 求助).  ``confidence`` (field → 0..1) is updated for the fields set."""
        conf = self.conf
        sure = confidence if confidence is not None else {}
        text = caller_turns[-1].strip() if caller_turns else ""
        if not text:
            return draft
        digits = spoken_digits(text)
        if m := _PHONE.search(digits):
            draft.phone = m.group(1)
            sure["phone"] = conf.phone_asked if _ASKS_PHONE.search(last_agent_text) and len(draft.phone) == 11 \
                else conf.phone
        if named := self._name(text, last_agent_text):
            draft.caller_name, sure["caller_name"] = named
        place = self._place(text)
        if place:
            field = "address" if _ASKS_HOME.search(last_agent_text) or _LIVES.search(
                text[: text.find(place) + 1] if place in text else "") else \
                "incident_address" if _ASKS_PLACE.search(last_agent_text) or not draft.incident_address else None
            if field:
                self._set_place(draft, field, place, sure)
        if m := _PLATE.search(text):
            draft.respondent = f"{m.group(0)}车辆驾驶员"
            sure["respondent"] = conf.respondent_plate
        else:
            named = [_OWN.sub("", _LEAD.sub("", m.group(1))) for m in _RESPONDENT.finditer(text)]
            best = max(named, key=len, default="")
            # a named party ("安家物业服务公司") replaces a generic one ("物业") said earlier
            if len(best) >= 2 and len(best) > len(draft.respondent):
                draft.respondent = best
                sure["respondent"] = conf.respondent_named if len(best) >= 4 else conf.respondent_generic
        turns = [t.strip() for t in caller_turns if t.strip()]
        draft.request_type = request_type or self.request_type(" ".join(turns))
        sure["request_type"] = conf.request_type_rule if request_type or any(
            p.search(" ".join(turns)) for _, p in self._types) else conf.request_type_default
        draft.summary, full = self._summary(draft, turns)
        sure["summary"] = conf.summary_full if full else conf.summary_partial
        return draft

    def _set_place(self, draft: TicketDraft, field: str, place: str, sure: dict[str, float]) -> None:
        if self.gazetteer is None:
            setattr(draft, field, place)
            sure[field] = self.conf.place_no_gazetteer
            return
        resolved = self.gazetteer.resolve(place)
        setattr(draft, field, resolved.text)
        sure[field] = resolved.confidence
        if resolved.district and (field == "incident_address" or not draft.district):
            draft.district = resolved.district
            sure["district"] = resolved.confidence

    def request_type(self, text: str) -> str:
        for name, pattern in self._types:
            if pattern.search(text):
                return name
        return self.params.default

    def _name(self, text: str, last_agent_text: str) -> tuple[str, float] | None:
        if m := _NAME.search(text):
            return m.group(1), self.conf.name_said
        if m := _SURNAME_FULL.search(text):
            return m.group(2), self.conf.name_full
        if m := _SURNAME.search(text):
            return f"{m.group(1)}先生/女士", self.conf.surname
        if _ASKS_NAME.search(last_agent_text):
            bare = re.fullmatch(r"[\u4e00-\u9fff]{2,3}", re.sub(r"[，,。！？\s]", "", text))
            if bare:
                return bare.group(0), self.conf.name_bare
        return None

    @staticmethod
    def _place(text: str) -> str | None:
        best = ""
        for m in _PLACE.finditer(text):
            span = _FILLER_END.sub("", _LEAD.sub("", m.group(0)))
            if len(span) > len(best):
                best = span
        return best if len(best) >= 3 else None

    def _summary(self, draft: TicketDraft, turns: list[str]) -> tuple[str, bool]:
        """``(summary, what and request both found)``: a sentence from the slots, e.g. 韦建华来电投诉。时间：好几天；
        地点：兴宾区城南街道碧水湾花园3栋；对象：安家物业服务公司；问题：垃圾堆了好几天都没人管；诉求：请派人处理。"""
        clauses = [c for t in turns for c in (_OPENING.sub("", c) for c in _CLAUSE.split(t)) if len(c) >= 3]
        what = next((c for c in clauses if _PROBLEM.search(c)), "")
        request = next((c for c in clauses if _REQUEST.search(c) and c != what), "")
        when = next((m.group(1) for t in turns for m in [_WHEN.search(t)] if m), "")
        slots = [("时间", when), ("地点", draft.incident_address or draft.address), ("对象", draft.respondent),
                 ("问题", what), ("诉求", request)]
        body = "；".join(f"{name}：{value}" for name, value in slots if value)
        who = draft.caller_name or "市民"
        return f"{who}来电{draft.request_type}。{body}。"[: self.summary_chars] if body else \
            f"{who}来电{draft.request_type}。", bool(what and request)
