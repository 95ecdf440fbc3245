"""110 police alerts and sensitive-content flags from what the caller says.

A police matter is something happening now or just now that puts people at
risk: violence or theft in progress, an accident with injuries, domestic
violence.  Each rule pairs an *event* pattern with a *cue* pattern (in
progress, injured, help) that must occur in the same recent caller window, so
"I was hurt at work last year" or "my wallet is lost" do not raise an alert.
Patterns are named parameters, tunable against labelled calls
(``hotline eval copilot`` reports recall and precision).

The ASR can garble the one word a rule needs (正在撬电动车的锁 heard as
正在跳电动车的所).  The learned ticket classifier still recognises such a call
from everything else the caller said, so when its top category is the police
one, with enough confidence and an in-progress cue in the window, that raises
the alert too, with a reason that asks the agent to confirm.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from copilot.category import CategoryPrediction


@dataclass(frozen=True)
class AlertRule:
    reason: str  # shown to the agent (Simplified Chinese)
    event: str  # regex: what is happening
    cue: str = ""  # regex that must also match in the window (empty: the event alone suffices)


_NOW = r"正在|现在|还在|刚刚|刚才|马上|快来|快点|赶紧|救命|一直在|又在|这会儿|已经"
_HURT = r"流血|出血|好多血|血流|受伤|伤得|头破|骨折|昏迷|不省人事|起不来|不动了|躺在地上|倒在地上|人事不省|快不行"


@dataclass(frozen=True)
class PoliceParams:
    rules: tuple[AlertRule, ...] = (
        AlertRule("持刀持械伤人", r"砍人|捅人|拿刀|拿着刀|持刀|动刀|拿着?棍子?打|持械|拿.{0,4}瓶.{0,3}砸"),
        AlertRule("正在发生的打架斗殴/暴力伤人", r"打架|斗殴|群殴|互殴|打人|砸人|打起来",
                  _NOW + r"|在打|打起来|" + _HURT),
        AlertRule("家庭暴力", r"家暴|家庭暴力|打(他|她)?老婆|打(他|她)?老公|打我妈|打孩子|(老公|丈夫|男人|老婆|爸|他|她).{0,8}打我(?!电话)|在打(她|他|我)"),
        AlertRule("正在发生的盗窃/抢劫", r"抢劫|抢东西|抢钱|抢包|抢了|被抢|抢手机|小偷|偷东西|在偷|正在偷|撬.{0,6}锁|撬门|撬车|入室|盗窃|扒手",
                  _NOW + r"|躲在|看着|跑了|还没跑|追"),
        AlertRule("交通事故有人受伤", r"车祸|撞了|撞人|被撞|撞倒|出事故|交通事故|翻车|追尾|撞到", _HURT),
        AlertRule("人身安全受到威胁", r"绑架|劫持|拐卖|拐走|被关起来|要杀|杀人|持枪|有枪|炸药|纵火|放火", ""),
    )
    window_turns: int = 2  # caller turns looked at together (event and cue may be split across them)
    # the classifier's view: its top path ends in this taxonomy leaf, with at least this probability (about
    # 100 paths share it; over 11,529 msgabench citizen messages 10 reach 0.12, 4 of them with a cue)
    category_leaf: str = "紧急警情转接"
    category_min_confidence: float = 0.12
    # a weaker signal than a rule, so a stricter cue (现在 and 已经 also come in past stories) and no past matter
    category_cue: str = r"正在|还在|刚刚|刚才|快来|快点|赶紧|救命|一直在|又在|这会儿|躲在|还没跑|追|" + _HURT
    category_exclude: str = r"去年|上个?月|上周|前几天|前两天|以前|之前|报过警|报了警|派出所|立了?案"
    category_reason: str = "疑似紧急警情（来电内容与警情相近，请核实）"


@dataclass(frozen=True)
class SensitiveParams:
    patterns: dict[str, str] = field(default_factory=lambda: {
        "self_harm": r"不想活|活不下去|活着没意思|自杀|寻死|轻生|跳楼|跳河|跳江|喝农药|吃安眠药|割腕|上吊|一死了之|死给你们看|了结自己",
        "media_threat": r"媒体|记者|电视台|报社|曝光|发到网上|发网上|发抖音|上抖音|发微博|上热搜|网上说|让大家都知道",
        "group_petition": r"上访|信访|集体(去|到|上)|联名|拉横幅|拉条幅|堵(路|门|政府)|围(堵|住)政府|(一起|都|全村|全小区).{0,6}去.{0,4}(政府|市里|省里|北京)|几十(个)?人.{0,6}去",
    })


@dataclass(frozen=True)
class Detection:
    kind: str  # police reason, or a sensitive flag name
    evidence: str


class AlertDetector:
    """Stateless matching over a window of recent caller text."""

    def __init__(self, police: PoliceParams | None = None, sensitive: SensitiveParams | None = None):
        self.police_params = police or PoliceParams()
        self._police = [(r.reason, re.compile(r.event), re.compile(r.cue) if r.cue else None)
                        for r in self.police_params.rules]
        self._category_cue = re.compile(self.police_params.category_cue)
        self._category_exclude = re.compile(self.police_params.category_exclude)
        self._sensitive = {k: re.compile(v) for k, v in (sensitive or SensitiveParams()).patterns.items()}

    def police(self, turns: list[str], category: CategoryPrediction | None = None) -> Detection | None:
        """The first rule that matches the recent caller turns; else the classifier's view of the call so far."""
        p = self.police_params
        window = "。".join(turns[-p.window_turns:])
        for reason, event, cue in self._police:
            m = event.search(window)
            if m and (cue is None or cue.search(window)):
                return Detection(reason, _sentence_around(window, m.start()))
        if (category is not None and category.path.split("/")[-1] == p.category_leaf
                and category.confidence >= p.category_min_confidence):
            m = self._category_cue.search(window)
            if m and not self._category_exclude.search(window):
                return Detection(p.category_reason, _sentence_around(window, m.start()))
        return None

    def sensitive(self, text: str) -> list[Detection]:
        found = []
        for flag, pattern in self._sensitive.items():
            m = pattern.search(text)
            if m:
                found.append(Detection(flag, _sentence_around(text, m.start())))
        return found


def _sentence_around(text: str, pos: int) -> str:
    start = max(text.rfind(p, 0, pos) for p in "。！？!?") + 1
    ends = [i for i in (text.find(p, pos) for p in "。！？!?") if i >= 0]
    return text[start : (min(ends) + 1 if ends else len(text))].strip()
