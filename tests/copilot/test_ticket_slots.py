"""The ticket draft is a draft: a summary from slots, addresses put right against the tenant's gazetteer, a
confidence on every field (the desk marks the low ones 待确认)."""
from __future__ import annotations

from copilot.places import Gazetteer
from copilot.ticket import TicketDrafter
from domain import tenant_settings
from domain.db import session_scope
from demo import seed_demo
from tickets.lifecycle import TicketDraft

PLACES = {"兴宾区": ["城东街道", "城北街道", "河西街道", "凤凰镇"], "象州县": ["象州镇", "石龙镇"]}


def _draft(turns_and_asks, gazetteer=None):
    drafter, draft, turns, sure = TicketDrafter(gazetteer=gazetteer), TicketDraft(), [], {}
    for caller, agent in turns_and_asks:
        turns.append(caller)
        drafter.update(draft, turns, agent, sure)
    return draft, sure


def test_summary_is_written_from_slots_not_pasted():
    draft, sure = _draft([
        ("喂，你好，我要投诉我们小区物业，垃圾堆了好几天都没人管，那个嗯嗯鸟鸟，物业是安家物业服务公司", ""),
        ("我姓韦，韦建华", "请问您怎么称呼？"),
        ("希望你们派人来处理一下", "您希望怎么处理？"),
    ])
    assert draft.summary == ("韦建华来电投诉。时间：好几天；地点：我们小区；对象：安家物业服务公司；问题：垃圾堆了好几天都没人管；"
                             "诉求：希望你们派人来处理一下。")
    assert "鸟鸟" not in draft.summary and "喂" not in draft.summary  # filler and garble are not slots
    assert sure["summary"] >= 0.6 and sure["caller_name"] >= 0.6 and sure["request_type"] >= 0.6


def test_the_time_slot_keeps_what_the_time_is_relative_to():
    draft, _ = _draft([("我的社保卡不见了，前两天在手机上挂过了，接下来要怎么补办", "")])
    assert "时间：前两天" in draft.summary  # not 两天: when it happened, not how long


def test_summary_without_a_request_is_unconfirmed():
    draft, sure = _draft([("家里的热水器坏了", "")])
    assert draft.summary == "市民来电求助。问题：家里的热水器坏了。"
    assert sure["summary"] < 0.6


def test_address_heard_wrong_is_put_right_by_sound_and_marked_for_confirmation():
    draft, sure = _draft([("我们这里有人在打架", ""), ("兴宾区核心街道将满路", "事发地点在哪里？")], Gazetteer(PLACES))
    assert draft.incident_address == "兴宾区河西街道将满路" and draft.district == "兴宾区"
    assert sure["incident_address"] < 0.6  # put right by sound: the agent confirms it


def test_address_as_written_is_confirmed_and_an_unknown_place_is_not():
    g = Gazetteer(PLACES)
    assert g.resolve("象州县石龙镇中山路8号").confidence >= 0.6
    assert g.resolve("象州县石龙镇中山路8号").district == "象州县"
    assert g.resolve("城北街道建设路").district == "兴宾区"  # the town tells the district
    unknown = g.resolve("碧水湾花园3栋")
    assert unknown.text == "碧水湾花园3栋" and unknown.district == "" and unknown.confidence < 0.6
    assert g.resolve("兴宾区城南街道").text == "兴宾区城南街道"  # 城南 does not sound like 城东 or 城北
    draft, sure = _draft([("我的电话是13877201234", "")])
    assert draft.phone == "13877201234" and sure["phone"] >= 0.6


def test_the_seeded_tenants_gazetteer_resolves_the_110_address(engine):
    """The issue's 110 call: 河西街道江南路 written as 兴宾区核心街道将满路, resolved with the demo tenant's gazetteer as
    the live copilot reads it (domain.tenant_settings.gazetteer)."""
    with session_scope(engine) as session:
        tenant = seed_demo(session)
        places = tenant_settings.gazetteer(session, tenant.id)
    resolved = Gazetteer(places).resolve("兴宾区核心街道将满路")
    assert resolved.text == "兴宾区河西街道将满路" and resolved.district == "兴宾区" and resolved.confidence < 0.6
