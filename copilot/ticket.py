"""A ticket draft filled in as the call goes: who is calling, where, about whom, and what they want.

The agent's question tells what the caller's next answer is ("您的联系电话？"
→ a phone number, "事发地点在哪里？" → the incident address), so extraction
looks at the previous agent turn as well as at the caller's own wording.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from asr.numbers import spoken_digits
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


class TicketDrafter:
    def __init__(self, params: RequestTypeParams | None = None, summary_chars: int = 160):
        self.params = params or RequestTypeParams()
        self._types = [(name, re.compile(p)) for name, p in self.params.rules]
        self.summary_chars = summary_chars

    def update(self, draft: TicketDraft, caller_turns: list[str], last_agent_text: str = "") -> TicketDraft:
        """Refine ``draft`` with the latest of the caller's turns (``caller_turns[-1]``); the request type and
        summary are drawn from all of them."""
        text = caller_turns[-1].strip() if caller_turns else ""
        if not text:
            return draft
        digits = spoken_digits(text)
        if m := _PHONE.search(digits):
            draft.phone = m.group(1)
        if name := self._name(text, last_agent_text):
            draft.caller_name = name
        place = self._place(text)
        if place:
            if _ASKS_HOME.search(last_agent_text) or _LIVES.search(text[: text.find(place) + 1] if place in text else ""):
                draft.address = place
            elif _ASKS_PLACE.search(last_agent_text) or not draft.incident_address:
                draft.incident_address = place
        if m := _PLATE.search(text):
            draft.respondent = f"{m.group(0)}车辆驾驶员"
        else:
            named = [_OWN.sub("", _LEAD.sub("", m.group(1))) for m in _RESPONDENT.finditer(text)]
            best = max(named, key=len, default="")
            # a named party ("安家物业服务公司") replaces a generic one ("物业") said earlier
            if len(best) >= 2 and len(best) > len(draft.respondent):
                draft.respondent = best
        turns = [t.strip() for t in caller_turns if t.strip()]
        draft.request_type = self.request_type(" ".join(turns))
        draft.summary = self._summary(turns)
        return draft

    def request_type(self, text: str) -> str:
        for name, pattern in self._types:
            if pattern.search(text):
                return name
        return self.params.default

    @staticmethod
    def _name(text: str, last_agent_text: str) -> str | None:
        if m := _NAME.search(text):
            return m.group(1)
        if m := _SURNAME_FULL.search(text):
            return m.group(2)
        if m := _SURNAME.search(text):
            return f"{m.group(1)}先生/女士"
        if _ASKS_NAME.search(last_agent_text):
            bare = re.fullmatch(r"[\u4e00-\u9fff]{2,3}", re.sub(r"[，,。！？\s]", "", text))
            if bare:
                return bare.group(0)
        return None

    @staticmethod
    def _place(text: str) -> str | None:
        best = ""
        for m in _PLACE.finditer(text):
            span = _FILLER_END.sub("", _LEAD.sub("", m.group(0)))
            if len(span) > len(best):
                best = span
        return best if len(best) >= 3 else None

    def _summary(self, turns: list[str]) -> str:
        # The substantive turns: drop short acknowledgements ("好的", "对，谢谢").
        body = [t for t in turns if len(re.sub(r"[，,。！？!?\s]", "", t)) >= 8]
        text = "；".join(body or turns)
        return text[: self.summary_chars]
