"""110 alerts on what the ASR wrote: homophones of a rule's words still alert, and ask the agent to confirm."""
from __future__ import annotations

import pytest

from asr.pinyin import sound_view
from copilot.alerts import AlertDetector, PoliceParams

# caller turns as Whisper wrote them on phone audio (the words in brackets are what was said)
GARBLED_POLICE = [
    ["楼顶上有个人一直在哭，说要条楼"],  # 跳楼
    ["路口有辆车把一个老人撞了", "人躺在地上起步来，好多学"],  # 起不来，好多血
    ["有个男的在打人，现在他还在打，那个人留学了"],  # 流血 (the rule also matches literally)
    # 喝得醉醺醺 lost entirely; 往…开, 车子歪歪扭扭 (as 外外扭扭) still say a drunk driver is on the road
    ["一个男的哥哥最惊讶走路都走不轮，刚刚笑你一辆白贵赏车要开车走轮。", "提发动了往危险大道方展开车子外外扭扭的。"],
    # 我爸有老年痴呆…走散了 lost; 到处找都找不到 and 他自己认不得回家的路 (as 人不得) remain
    ["为伙伴有忙年去班，刚刚半个钟头前才菜市场门口跟无所算了，到处找都找不到，怎么办啊？", "他自己人不得回家的路。"],
]
# sound-alike traps: each shares syllables with a rule word but is no emergency
SOUND_TRAPS = [
    ["我钱包刚才丢了，里面有社保卡，怎么办"],  # 钱包 ~ 抢包 only by fuzzy finals
    ["当天能拿到离婚证吗"],  # 拿到 ~ 拿刀 (a rule without a cue is not matched by sound)
    ["我家搬家把结婚证弄丢了，怎么补"],  # 搬家 ~ 绑架 only by fuzzy finals
    ["一开门就闻到好大煤气味，家里没有人。", "放火关门，窗户也打开了。"],  # 关阀关门 misheard as 放火
]


def test_sound_view_keeps_length_and_joins_homophones():
    assert len(sound_view("有人要跳楼！ok")) == len("有人要跳楼！ok")
    assert sound_view("要跳楼") == sound_view("要条楼")
    assert sound_view("好多血") == sound_view("好多学")
    assert sound_view("钱包") != sound_view("抢包")
    assert sound_view("ok，。") == "ok，。"


@pytest.mark.parametrize("turns", GARBLED_POLICE)
def test_garbled_emergency_alerts(turns):
    assert AlertDetector().police(turns) is not None


def test_sound_match_asks_to_confirm_and_quotes_what_asr_wrote():
    found = AlertDetector().police(["楼顶上有个人一直在哭，说要条楼"])
    assert found.kind.endswith(PoliceParams().sound_alike_note)
    assert "条楼" in found.evidence


def test_sound_matching_can_be_switched_off():
    assert AlertDetector(PoliceParams(sound_alike=False)).police(["楼顶上有个人一直在哭，说要条楼"]) is None


@pytest.mark.parametrize("turns", SOUND_TRAPS)
def test_sound_alike_traps_do_not_alert(turns):
    assert AlertDetector().police(turns) is None
