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

from asr.pinyin import sound_view

if TYPE_CHECKING:
    from copilot.category import CategoryPrediction


@dataclass(frozen=True)
class AlertRule:
    reason: str  # shown to the agent (Simplified Chinese)
    event: str  # regex: what is happening
    cue: str = ""  # regex that must also match in the window (empty: the event alone suffices)
    by_sound: bool = True  # also matched by sound (``PoliceParams.sound_alike``) when it has a cue


_NOW = r"正在|现在|还在|刚刚|刚才|马上|快来|快点|赶紧|救命|一直在|又在|这会儿|已经"
_HURT = (r"流血|出血|好多血|血流|受伤|伤得|头破|骨折|断了|昏迷|不省人事|起不来|站不起来|爬不起来|不动了|动不了|躺在地上|"
         r"倒在地上|人事不省|快不行|没反应|没有反应|晕过去|晕倒")
_PERSON = r"孩子|小孩|娃|儿子|女儿|老人|老头|老太|老爷子|老婆婆|我爸|我妈|奶奶|爷爷|外婆|外公"


@dataclass(frozen=True)
class PoliceParams:
    rules: tuple[AlertRule, ...] = (
        AlertRule("持刀持械伤人", r"砍人|捅人|拿刀|拿着刀|持刀|动刀|拿着?棍子?打|持械|拿.{0,4}瓶.{0,3}砸|"
                  r"拿着?(棍|棒|钢管|铁棍|铁管|砖头|石头|锤子|斧头).{0,10}(打|砍|砸|追)|乱打|头被打破|被打(破|伤|晕)"),
        AlertRule("正在发生的打架斗殴/暴力伤人", r"打架|斗殴|群殴|互殴|打人|砸人|打起来|动手.{0,6}打|"
                  r"把(司机|人|他|她|我|老人|孩子|小孩|保安).{0,3}打(了|伤|倒|晕|破)",
                  _NOW + r"|在打|打起来|" + _HURT),
        AlertRule("家庭暴力", r"家暴|家庭暴力|打(他|她)?老婆|打(他|她)?老公|打我妈|打孩子|(老公|丈夫|男人|老婆|爸|他|她).{0,8}打我(?!电话)|在打(她|他|我)"),
        AlertRule("正在发生的盗窃/抢劫", r"抢劫|抢东西|抢钱|抢包|抢了|被抢|抢手机|小偷|偷东西|在偷(?!排)|撬.{0,8}(锁|门|窗|车)|"
                  r"在撬|撬开|撬门|撬车|翻墙进|翻窗进|入室|盗窃|扒手",
                  _NOW + r"|躲在|看着|跑了|还没跑|追|好几分钟"),
        AlertRule("交通事故有人受伤", r"车祸|撞了|撞人|被撞|撞倒|撞上|相撞|刮了|刮倒|出事故|交通事故|翻车|追尾|撞到|摔倒", _HURT),
        AlertRule("人身安全受到威胁", r"绑架|劫持|拐卖|拐走|被关起来|要杀|杀人|持枪|有枪|炸药", ""),
        # 放火 alone is also a misheard 关火/关阀 (放火关门): arson needs someone doing it or a fire
        AlertRule("有人纵火", r"纵火|放火|点火烧", r"正在|在放|要放|想放|威胁|烧了|烧起来|着火|冒烟|火很大|烟(好|很|太)?大",
                  by_sound=False),  # 放火 sounds as 防火 (防火通道)
        AlertRule("儿童或老人刚刚走失", rf"({_PERSON})[^，。？！的]{{0,3}}(不见了|找不到了|找不见了|被人?抱走|被人?带走)|"
                  rf"({_PERSON}|老年痴呆).{{0,30}}(走散|走丢|走失)|一转身就?不见了|突然就?不见了|"
                  r"(认不得|不认得|不认识|记不得|找不到)回家的?路",
                  r"刚才|刚刚|一转身|一下子|分钟前|钟头前|就不见|还在|到处找|找不到"),
        AlertRule("有人要跳楼/轻生", r"要跳(楼|下去|河|江|桥)|想跳(楼|下去|河|江)|(坐|站|爬)在?(楼顶|天台|顶楼|桥上|楼边|边边上|栏杆)|"
                  r"(楼顶|天台|桥上).{0,10}(不想活|要跳|想不开)|跳楼(?!价)|跳下去|跳河|跳江",
                  r"不想活|想不开|寻死|轻生|要跳|坐在|站在|好怕|楼顶|天台"),
        AlertRule("燃气泄漏且有人被困", r"煤气|燃气|天然气|液化气",
                  r"(人|他|她|老人|孩子)还?在(里面|屋里|家里|房里)|晕倒|昏迷|打不开门|叫不应|没反应|爆炸|着火"),
        AlertRule("正在发生的醉驾", r"醉驾|酒驾|(喝醉|喝了酒|喝多了|醉醺醺|喝得醉).{0,30}(开车|驾驶|开走|上了.{0,4}车)|"
                  r"车子?.{0,3}(歪歪扭扭|东倒西歪|摇摇晃晃|左摇右晃|扭来扭去)|走路都?走不稳.{0,30}(开车|开走|上了?.{0,4}车)",
                  _NOW + r"|在开|开走了|上路|往.{0,8}开"),
    )
    window_turns: int = 2  # caller turns looked at together (event and cue may be split across them)
    # the classifier's view: its top path ends in this taxonomy leaf, with at least this probability (about
    # 100 paths share it; over 11,529 msgabench citizen messages 10 reach 0.12, 4 of them with a cue)
    category_leaf: str = "紧急警情转接"
    category_min_confidence: float = 0.12
    # a weaker signal than a rule, so a stricter cue (现在 and 已经 also come in past stories) and no past matter
    category_cue: str = r"正在|还在|刚刚|刚才|快来|快点|赶紧|救命|一直在|又在|这会儿|躲在|还没跑|追|好几分钟|几分钟了|" + _HURT
    category_exclude: str = r"去年|上个?月|上周|前几天|前两天|以前|之前|报过警|报了警|派出所|立了?案"
    category_reason: str = "疑似紧急警情（来电内容与警情相近，请核实）"
    # also match the rules that need a cue on the window's sound (homophones the ASR wrote); a rule whose event
    # alone suffices is too loose by sound (拿到 sounds like 拿刀, 搬家 like 绑架)
    sound_alike: bool = True
    sound_alike_note: str = "（按读音近似匹配，请核实）"


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
        self._police_sound = [(r.reason + self.police_params.sound_alike_note, re.compile(sound_view(r.event)),
                               re.compile(sound_view(r.cue)) if r.cue else None)
                              for r in self.police_params.rules if r.cue and r.by_sound] if self.police_params.sound_alike else []
        self._category_cue = re.compile(self.police_params.category_cue)
        self._category_cue_sound = re.compile(sound_view(self.police_params.category_cue))
        self._category_exclude = re.compile(self.police_params.category_exclude)
        self._sensitive = {k: re.compile(v) for k, v in (sensitive or SensitiveParams()).patterns.items()}

    def police(self, turns: list[str], category: CategoryPrediction | None = None) -> Detection | None:
        """The first rule that matches the recent caller turns; else the classifier's view of the call so far."""
        p = self.police_params
        window = "。".join(turns[-p.window_turns:])
        for rules, view in ((self._police, window), (self._police_sound, sound_view(window))):
            for reason, event, cue in rules:
                m = event.search(view)
                if m and (cue is None or cue.search(view)):
                    return Detection(reason, _sentence_around(window, m.start()))
        if (category is not None and category.path.split("/")[-1] == p.category_leaf
                and category.confidence >= p.category_min_confidence):
            m = self._category_cue.search(window) or self._category_cue_sound.search(sound_view(window))
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
