"""The copilot processor with real models: frames in, suggestions and alerts out."""
from __future__ import annotations

import pytest

from copilot.category import CategoryModel, load_category_model, shipped_training_data
from copilot.processor import CopilotModels, CopilotParams, category_text, conversation, latency_ms
from domain.call_events import PoliceAlert, SensitiveFlag, Suggestion, TranscriptFinal, TranscriptPartial


@pytest.fixture(scope="module")
def category(embedder, tmp_path_factory):
    return load_category_model(embedder, None, tmp_path_factory.mktemp("data"))


@pytest.fixture
def engine(demo_index, category):
    suggested = []
    eng = CopilotModels(index=demo_index, category=category, on_suggested=lambda t, ids: suggested.append(ids))
    eng.suggested = suggested
    return eng


def _final(text, role="caller", call="c1", start_ms=0):
    return TranscriptFinal(tenant_id=1, call_id=call, leg=role, role=role, start_ms=start_ms, end_ms=start_ms + 1000,
                           text=text)


def test_question_builds_across_turns(engine):
    proc = engine.new_processor(_final(""))
    assert proc.process(_final("您好，来宾12345，请问有什么可以帮您？", role="agent")) == []
    out = proc.process(_final("你好，我想问一下"))
    assert len(out) == 1 and isinstance(out[0], Suggestion) and out[0].no_good_match and out[0].hits == []
    out = proc.process(_final("我的社保卡不见了，要怎么补办啊", start_ms=9700))
    s = out[0]
    assert not s.no_good_match and s.hits[0].entry_id == "demo027"
    assert any(f.startswith("费用：") for f in s.hits[0].key_facts)
    assert s.hits[0].trigger == "我的社保卡不见了，要怎么补办啊" and s.hits[0].first_ms == 9700
    assert s.category.startswith("劳动和社会保障") and s.category_confidence > 0
    assert s.ticket_draft["request_type"] == "咨询"
    assert latency_ms(s) is not None and latency_ms(s) >= 0
    out = proc.process(_final("要交钱吗", start_ms=20000))  # a follow-up on its own means little; the context carries it
    assert "demo027" in [h.entry_id for h in out[0].hits]
    assert engine.suggested and engine.suggested[0][0] == "demo027"


def test_cards_stay_newest_first_and_a_garbled_turn_removes_none(engine):
    proc = engine.new_processor(_final("", call="c6"))
    proc.process(_final("你好，我想问一下", call="c6", start_ms=5000))
    first = proc.process(_final("我的社保卡不见了，要怎么补办啊", call="c6", start_ms=9700))[0]
    assert first.hits and first.hits[0].entry_id == "demo027", first
    good = first.hits[0]
    # the ASR garbles the next sentences: every card stays, the right one as first shown
    assert proc.process(_final("嗯嗯", call="c6", start_ms=40000)) == []  # too short to change anything
    for i, text in enumerate(["那个鸟鸟前猫秘股就是那个嗯", "喂喂，信号不好，刚才说到哪了"]):
        garbled = proc.process(_final(text, call="c6", start_ms=43000 + i * 5000))[-1]
        assert all(h.score >= engine.index.params.no_match_threshold for h in garbled.hits)
        ids = [h.entry_id for h in garbled.hits]
        assert {h.entry_id for h in first.hits} <= set(ids)
        card = garbled.hits[ids.index("demo027")]
        assert (card.trigger, card.first_ms) == (good.trigger, good.first_ms) and card.score >= good.score
    # a new topic brings new cards on top; the earlier cards stay below, with their own trigger and time
    later = proc.process(_final("还有我家门口的路灯坏了好几天了，晚上黑漆漆的", call="c6", start_ms=60000))[0]
    ids = [h.entry_id for h in later.hits]
    assert "demo027" in ids and ids[0] != "demo027"
    assert later.hits[0].first_ms == 60000 and "路灯" in later.hits[0].trigger
    assert later.hits[ids.index("demo027")].first_ms == 9700
    assert len(ids) == len(set(ids)) <= engine.params.max_cards


def test_police_alert_from_partial_once(engine):
    proc = engine.new_processor(_final("", call="c2"))
    partial = TranscriptPartial(tenant_id=1, call_id="c2", leg="caller", role="caller", start_ms=0, end_ms=500,
                                text="喂，我们楼下有人在打架，拿着刀")
    alerts = proc.process(partial)
    assert len(alerts) == 1 and isinstance(alerts[0], PoliceAlert) and "打架" in alerts[0].evidence
    out = proc.process(_final("喂，我们楼下有人在打架，拿着刀，有人流血了", call="c2"))
    assert not any(isinstance(e, PoliceAlert) for e in out)  # raised once per call
    s = next(e for e in out if isinstance(e, Suggestion))
    assert s.ticket_draft["police_110"] and s.ticket_draft["request_type"] == "求助"
    assert s.ticket_draft["summary"].startswith("市民来电求助")  # the summary says what the type field says


def test_police_alert_when_asr_garbles_the_word_a_rule_needs(engine):
    """撬 heard as 跳 and 翘: the rules match it by sound (copilot.alerts), and the alert asks the agent to confirm."""
    proc = engine.new_processor(_final("", call="c4"))
    garbled = "喂，我跟你说，我们车库里有个人正在跳车锁，已经翘开两辆车的门了"
    assert "读音" in engine.detector.police([garbled]).kind
    alerts = [e for e in proc.process(_final(garbled, call="c4")) if isinstance(e, PoliceAlert)]
    assert len(alerts) == 1 and "核实" in alerts[0].reason and "跳车锁" in alerts[0].evidence
    past = engine.new_processor(_final("", call="c5"))  # the same category, but a past matter
    out = past.process(_final("我的电动车上个月丢了，派出所立了案，刚才打电话问也没结果", call="c5"))
    assert not any(isinstance(e, PoliceAlert) for e in out)


def test_sensitive_flag_and_draft_fields(engine):
    proc = engine.new_processor(_final("", call="c3"))
    proc.process(_final("我要投诉，楼上702天天半夜唱歌，吵得孩子睡不着", call="c3"))
    proc.process(_final("请问您贵姓？", role="agent", call="c3"))
    proc.process(_final("我姓蓝，蓝海燕", call="c3"))
    out = proc.process(_final("再不管我就找电视台曝光", call="c3"))
    flags = [e for e in out if isinstance(e, SensitiveFlag)]
    assert [f.flag for f in flags] == ["media_threat"]
    s = next(e for e in out if isinstance(e, Suggestion))
    assert s.ticket_draft["caller_name"] == "蓝海燕" and s.ticket_draft["request_type"] == "投诉"
    assert s.category.startswith("生态环境/噪声污染")
    assert s.ticket_draft["sensitive"] == ["media_threat"]


def test_the_ticket_category_reads_the_conversation_and_the_110_view_the_caller(engine):
    """A caller turn as the ASR wrote it (公租房 heard as 公主访); the agent's answer that follows names public
    rental housing, and the category of the next suggestion is read from both (call c127 of our corpus, its ASR
    transcript), the greeting before the caller spoke left out.  The 110 alert's view stays the caller's words."""
    proc = engine.new_processor(_final("", call="c6"))
    proc.process(_final("您好，来宾12345政务服务便民热线，请问有什么可以帮您？", role="agent", call="c6"))
    proc.process(_final("你好，我在来宾程序一个厂里上班三年了人，户口簿在这边，没有房子，能申请公主访忙。", call="c6"))
    answer = "在城区稳定就业的新市民，在城区没有自有住房，可以申请公租房。"
    proc.process(_final(answer, role="agent", call="c6"))
    (s,) = proc.process(_final("要什么材料？", call="c6"))
    assert s.category.startswith("住房保障") and s.ticket_draft["category"] == s.category
    ticket_text, police_text = proc._predictions["ticket"][0], proc._predictions["police"][0]
    assert ticket_text.startswith("你好，我在来宾") and answer in ticket_text and ticket_text.endswith("要什么材料？")
    assert answer not in police_text and "12345" not in ticket_text


def test_category_model_learns_and_validates(embedder):
    texts, labels = shipped_training_data()
    assert len(set(labels)) >= 100  # every leaf of the bundled taxonomy has examples we wrote
    model = CategoryModel.train(texts[:60], labels[:60], embedder)
    assert model.predict(texts[0]).path == labels[0]
    with pytest.raises(Exception):
        CategoryModel.train(["a", "b"], ["x", "x"], embedder)


def test_synthetic_calls_level1_accuracy(category, shared_data):
    import json

    ok = n = 0
    for f in sorted((shared_data / "synthetic_calls/dialogues").glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        text = category_text(conversation((t["speaker"], t["text"]) for t in d["turns"]), CopilotParams().category_chars)
        ok += category.predict(text).level1 == d["category"].split("/")[0]
        n += 1
    assert ok / n >= 0.9


def test_the_agents_words_bring_up_the_entry_they_are_about(engine):
    """The caller's words garbled past matching, the agent names the matter: its entry comes up as a card at once,
    marked as brought up by the agent; an agent's question that names nothing brings up no card."""
    proc = engine.new_processor(_final("", call="c8"))
    assert proc.process(_final("您好，来宾12345，请问有什么可以帮您？", role="agent", call="c8")) == []  # before the caller
    garbled = proc.process(_final("喂，那个鸟鸟前猫秘股就是那个嗯", call="c8", start_ms=4000))[0]
    assert "demo027" not in [h.entry_id for h in garbled.hits]
    assert proc.process(_final("好的，请问您贵姓？", role="agent", call="c8", start_ms=8000)) == []
    out = proc.process(_final("您是说社保卡不见了要补办是吧，我给您查一下", role="agent", call="c8", start_ms=12000))
    assert len(out) == 1 and isinstance(out[0], Suggestion) and not out[0].no_good_match
    card = out[0].hits[0]
    assert card.entry_id == "demo027" and card.trigger_role == "agent" and card.first_ms == 12000
    assert out[0].category == garbled.category  # the category is still the caller's conversation's
    # said again, the entry is already on the stack: nothing new to push
    assert proc.process(_final("社保卡不见了要补办，我给您说一下流程", role="agent", call="c8", start_ms=16000)) == []
