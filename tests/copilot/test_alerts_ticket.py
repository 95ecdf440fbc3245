"""110 alerts, sensitive flags and the ticket draft, on calls we wrote and on the labelled synthetic calls."""
from __future__ import annotations

import json

import pytest

from copilot.alerts import AlertDetector
from copilot.ticket import TicketDrafter
from tickets.lifecycle import TicketDraft

POLICE = [
    ["喂，我们小区门口有两伙人在打架，有人拿刀了，快来人啊"],
    ["我老公喝了酒在家打我，我现在躲在厕所里"],
    ["路口有辆车把一个老人撞了", "人躺在地上起不来，流了好多血"],
    ["有个小偷正在撬我们楼下的电动车锁"],
    ["我刚才在街上被人抢了包，那人还没跑远"],
    ["隔壁男的又在打他老婆，一直喊救命"],
    ["我儿子刚才还在超市门口玩，一转身就不见了"],
    ["我爸有老年痴呆，刚刚在菜市场跟我走散了，到处找不到"],
    ["楼顶天台上有个人坐在栏杆边上哭，说不想活了"],
    ["隔壁桌那个男的喝得醉醺醺的，现在上了车要开走了"],
    ["我们家煤气漏了，我妈还在屋里叫不应"],
    ["包工头带人拿着钢管在工地乱打，有人头被打破了"],
    ["对面有两个人在撬邻居家的门，撬了好几分钟了"],
    ["有人在楼道里放火，烟好大"],
    ["前面那辆车歪歪扭扭的，一直往逆行道上开"],
    ["我在公交车上，有个男的跟司机吵起来，动手把司机打了", "现在他还在车上骂人"],
]
NOT_POLICE = [
    ["我社保卡丢了，要怎么补办"],
    ["我去年干活摔伤了腰，现在干不了重活，想申请低保"],
    ["楼上邻居天天晚上唱歌，吵得我睡不着"],
    ["我家煤气味很重，我好怕，怎么办啊"],
    ["我前两天跟别人车子剐了一下，人都没事，保险怎么走"],
    ["小区有人遛狗不牵绳，我想反映一下"],
    ["我的电动车上个月丢了，派出所立了案，想问问进度"],
    ["我家狗昨天走丢了，能帮忙发个寻狗启事吗"],
    ["上游有个厂在偷排污水，河里好多死鱼"],
    ["这家店搞跳楼价清仓，结果卖的是假货"],
    ["我孩子的户口本找不到了，刚刚翻遍了家里，怎么补办"],
    ["我刚刚把电话打了好几遍都没人接，社保卡补办要多久"],
]


@pytest.mark.parametrize("turns", POLICE)
def test_police_matters_alert(turns):
    assert AlertDetector().police(turns) is not None


@pytest.mark.parametrize("turns", NOT_POLICE)
def test_ordinary_calls_do_not_alert(turns):
    assert AlertDetector().police(turns) is None


def test_sensitive_flags():
    det = AlertDetector()
    assert [d.kind for d in det.sensitive("再不解决我就不想活了，我从楼上跳下去")] == ["self_harm"]
    assert [d.kind for d in det.sensitive("你们不管我就找记者曝光")] == ["media_threat"]
    assert [d.kind for d in det.sensitive("我们全村的人明天一起去市政府上访")] == ["group_petition"]
    assert det.sensitive("我想问一下公积金怎么提取") == []


def test_ticket_draft_builds_across_turns():
    drafter, draft, turns = TicketDrafter(), TicketDraft(), []
    for caller, agent in (("我要投诉我们小区物业，垃圾堆了好几天都没人管，物业是安家物业服务公司", ""),
                          ("我姓韦，韦建华", "请问您怎么称呼？"), ("幺三三六七七二五八四零", "您的联系电话是多少？"),
                          ("我住在兴宾区城南街道碧水湾花园3栋", "您的住址是？")):
        turns.append(caller)
        drafter.update(draft, turns, agent)
    d = draft.model_dump()
    assert d["caller_name"] == "韦建华"
    assert d["phone"] == "13367725840"
    assert d["address"] == "兴宾区城南街道碧水湾花园3栋"
    assert d["respondent"] == "安家物业服务公司"
    assert d["request_type"] == "投诉"
    assert "问题：垃圾堆了好几天都没人管" in d["summary"] and d["summary"].startswith("韦建华来电投诉。")


@pytest.mark.parametrize("text,kind", [
    ("我想问一下公积金怎么提取", "咨询"), ("我要举报有个厂偷排废水", "举报"), ("我想提个建议，能不能增加公交班次", "建议"),
    ("路灯坏了一个礼拜了，麻烦派人来修", "求助"), ("出租车司机绕路多收了我二十块钱", "投诉"),
])
def test_request_type(text, kind):
    assert TicketDrafter().request_type(text) == kind


def test_synthetic_calls_police_recall_and_precision(shared_data):
    tp = fp = fn = 0
    det = AlertDetector()
    for f in sorted((shared_data / "synthetic_calls/dialogues").glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        turns, alerted = [], False
        for t in d["turns"]:
            if t["speaker"] == "caller":
                turns.append(t["text"])
                alerted = alerted or det.police(turns) is not None
        tp += alerted and d["police_110"]
        fp += alerted and not d["police_110"]
        fn += (not alerted) and d["police_110"]
    assert fn == 0 and tp > 0
    assert tp / (tp + fp) >= 0.8
