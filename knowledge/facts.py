"""Key facts an agent must not get wrong, picked out of an answer: materials, fees, deadlines, offices."""
from __future__ import annotations

import re
from dataclasses import dataclass

_CLAUSE = re.compile(r"[^。；;！!？?\n]+")


@dataclass(frozen=True)
class FactPatterns:
    """Named patterns, in display order; a clause is tagged with the first that matches."""

    fee: str = r"\d+(?:\.\d+)?\s*(?:元|万元)|免费|不收费|收取|工本费|费用"
    deadline: str = r"\d+\s*(?:个)?(?:工作日|日|天|周|个月|月|年|小时|分钟)(?:内|以内|之内|前)?|截止|期限|时限|有效期"
    materials: str = r"材料|携带|带上|提供|提交|身份证|户口簿|证明|申请表|照片|合同|发票"
    office: str = r"窗口|大厅|中心|派出所|网点|营业厅|APP|公众号|小程序|平台|热线|\d{3,5}(?!\d)"


_LABELS = {"fee": "费用", "deadline": "时限", "materials": "材料", "office": "办理渠道"}


def key_facts(answer: str, limit: int = 5, patterns: FactPatterns = FactPatterns()) -> list[str]:
    """Up to ``limit`` clauses of ``answer`` prefixed with what they tell, e.g. "费用：补卡收取工本费20元"."""
    compiled = [(name, re.compile(p)) for name, p in patterns.__dict__.items()]
    facts: list[str] = []
    for clause in _CLAUSE.findall(answer):
        clause = clause.strip("，, ")
        for name, pattern in compiled:
            if pattern.search(clause):
                facts.append(f"{_LABELS[name]}：{clause}")
                break
        if len(facts) >= limit:
            break
    return facts
