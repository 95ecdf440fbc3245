"""Rule operators, scorecard validation and score_call on hand-made transcripts."""
from __future__ import annotations

import numpy as np
import pytest

from qa.rules import RuleContext, RuleError, char_ngram_similarity, evaluate
from qa.scorecard import ScorecardError, default_scorecard, parse
from qa.scoring import score_call
from qa.transcript import normalize, normalize_text

A, C = "agent", "caller"


def segs(*rows):
    return normalize([{"role": r, "start_ms": s, "end_ms": e, "text": t} for r, s, e, t in rows])


CALL = segs(
    (A, 0, 8000, "您好，来宾幺二三四五政务服务便民热线，十五号话务员为您服务，请问有什么可以帮您？"),
    (C, 8500, 12000, "我家楼下烧烤摊有人在打架，有人流血了！"),
    (A, 11200, 15000, "请您注意安全，请问具体在什么地方？"),
    (C, 15500, 19000, "兴宾区江南路新世纪广场后面。"),
    (A, 31000, 37000, "好的，兴宾区江南路新世纪广场后面有人打架，现在为您转接110，请不要挂机。"),
    (A, 37500, 40000, "感谢您的来电，正在为您转接。"),
)


def ctx(segments=CALL, **kw):
    return RuleContext(segments, **kw)


def test_digit_normalisation_for_spoken_numbers():
    assert normalize_text("来宾幺二三四五热线，十五号话务员") == "来宾12345热线，15号话务员"


def test_keywords_modes():
    assert evaluate({"op": "keywords", "role": A, "words": ["您好", "再见"], "mode": "any"}, ctx()).matched
    assert not evaluate({"op": "keywords", "role": A, "words": ["您好", "再见"], "mode": "all"}, ctx()).matched
    assert evaluate({"op": "keywords", "role": A, "words": ["再见"], "mode": "none"}, ctx()).matched
    hit = evaluate({"op": "keywords", "role": A, "words": ["您好", "110", "感谢"], "mode": "at_least", "n": 3}, ctx())
    assert hit.matched and {e["match"] for e in hit.evidence} == {"您好", "110", "感谢"}
    with pytest.raises(RuleError):
        evaluate({"op": "keywords", "words": ["x"], "mode": "most"}, ctx())


def test_regex_with_exclusions_and_position_scopes():
    first = {"op": "regex", "role": A, "scope": {"first": 1, "among": "call"}, "pattern": r"12345.*\d+号"}
    assert evaluate(first, ctx()).matched
    assert not evaluate(first, ctx(CALL[1:])).matched  # caller spoke first: no greeting
    assert evaluate({"op": "regex", "role": A, "scope": {"last": 1}, "pattern": "感谢.*来电"}, ctx()).matched
    excl = {"op": "regex", "role": A, "pattern": "转接110", "exclude": ["不要挂机"]}
    assert not evaluate(excl, ctx()).matched
    after = {"op": "keywords", "role": A, "words": ["转接110"],
             "scope": {"after": {"op": "keywords", "role": C, "words": ["打架"]}}}
    before = {**after, "scope": {"before": {"op": "keywords", "role": C, "words": ["打架"]}}}
    assert evaluate(after, ctx()).matched and not evaluate(before, ctx()).matched


def test_silence_overlap_rate_metadata_sentiment():
    silence = {"op": "silence", "role": A, "min_ms": 10000, "hold_phrases": ["请您稍等"]}
    hit = evaluate(silence, ctx())
    assert hit.matched and hit.evidence[0]["silence_ms"] == 12000
    held = list(CALL)
    held[2] = segs((A, 11200, 15000, "好的，请您稍等，我查一下。"))[0]
    held[2].idx = 2
    assert not evaluate(silence, ctx(held)).matched  # announced hold
    over = evaluate({"op": "overlap", "role": A, "min_ms": 500}, ctx())
    assert over.matched and over.evidence[0]["overlap_ms"] == 800
    assert not evaluate({"op": "overlap", "role": A, "min_ms": 1000}, ctx()).matched
    rate = {"op": "speech_rate", "role": A, "mode": "average", "min_cpm": 150, "max_cpm": 330}
    assert not evaluate(rate, ctx()).matched
    fast = evaluate({**rate, "mode": "per_sentence", "max_cpm": 200, "min_chars": 10}, ctx())
    assert fast.matched and all(e["cpm"] > 200 for e in fast.evidence)
    meta = {"op": "metadata", "field": "hold_ms", "cmp": ">", "value": "$max_hold"}
    assert evaluate(meta, ctx(metadata={"hold_ms": 90000}, params={"max_hold": 60000})).matched
    assert not evaluate(meta, ctx(metadata={"hold_ms": 1000}, params={"max_hold": 60000})).matched
    rude = segs((A, 0, 2000, "行了行了，你吼也没用，烦不烦！"))
    assert evaluate({"op": "sentiment", "role": A, "below": -0.5}, ctx(rude)).matched
    assert not evaluate({"op": "sentiment", "role": A, "below": -0.5}, ctx()).matched


def test_combinators_and_semantic_backends():
    cond = {"all": [{"op": "keywords", "role": A, "words": ["您好"]},
                    {"not": {"op": "keywords", "role": A, "words": ["你自己去查"]}}]}
    assert evaluate(cond, ctx()).matched
    assert evaluate({"any": [{"op": "keywords", "words": ["不存在"]}, cond]}, ctx()).matched
    sem = {"op": "semantic", "role": A, "examples": ["现在为您转接110"], "threshold": 0.3}
    with pytest.raises(RuleError):  # never silently falls back
        evaluate(sem, ctx())
    assert evaluate(sem, ctx(similarity=char_ngram_similarity())).matched

    def fake_embed(texts):  # deterministic stand-in for an embedder: bag of characters
        vocab = "转接110感谢您好"
        return np.array([[t.count(ch) for ch in vocab] for t in texts], dtype=np.float32) + 1e-3

    from qa.rules import embedding_similarity
    hit = evaluate({**sem, "threshold": 0.8}, ctx(similarity=embedding_similarity(fake_embed)))
    assert hit.matched and "转接110" in hit.evidence[0]["text"]


def test_scorecard_validation_errors_are_readable():
    card = default_scorecard()
    assert sum(i.weight for i in card.items) == 100
    data = card.model_dump()
    data["items"][0]["require"] = {"op": "nonsense"}
    with pytest.raises(ScorecardError, match="未知算子"):
        parse(data)
    data = card.model_dump()
    data["items"][0]["require"] = {"op": "silence", "min_ms": "$nope"}
    with pytest.raises(ScorecardError, match="未定义的参数"):
        parse(data)
    data = card.model_dump()
    data["params"]["long_silence_ms"]["value"] = 999999
    with pytest.raises(ScorecardError):
        parse(data)


def test_score_call_on_a_110_call_with_char_ngram_similarity():
    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    res = score_call(CALL, {"duration_ms": 39000}, card, None)
    assert res.item("greeting").passed
    assert res.item("police_110").applicable and res.item("police_110").passed
    assert not res.item("long_silence").passed and res.item("long_silence").evidence[0]["start_ms"] == 19000
    assert not res.item("answer_accuracy").applicable  # no KB given
    assert not res.item("interruption").passed  # the agent started 800 ms before the caller finished
    assert res.score == 100 - 8 - 6 and not res.serious_service_violation
    semantic = parse({**default_scorecard().model_dump(), "items": [
        {"code": "empathy", "name": "共情安抚", "weight": 5, "severity": "minor",
         "require": {"op": "semantic", "role": "agent", "examples": ["请您别着急，我们一定帮您处理"], "threshold": 0.9}}]})
    with pytest.raises(ValueError, match="embed"):
        score_call(CALL, {}, semantic, None)  # semantic rules need an embedder: no silent fallback


def test_bad_segments_are_rejected_clearly():
    with pytest.raises(ValueError, match="role"):
        normalize([{"role": "robot", "start_ms": 0, "end_ms": 1, "text": "x"}])
    with pytest.raises(ValueError, match="times"):
        normalize([{"role": "agent", "text": "x"}])


def test_split_sentences_merge_into_turns():
    raw = [{"role": A, "start_ms": 0, "end_ms": 4000, "text": "您好，来宾12345政务服务便民热线"},
           {"role": A, "start_ms": 4400, "end_ms": 9000, "text": "23号话务员为您服务"},
           {"role": C, "start_ms": 9500, "end_ms": 12000, "text": "你好"}]
    turns = normalize(raw, merge_gap_ms=1500)
    assert [t.role for t in turns] == [A, C] and turns[0].text == "您好，来宾12345政务服务便民热线，23号话务员为您服务"
    assert (turns[0].start_ms, turns[0].end_ms, turns[1].idx) == (0, 9000, 1)
    assert len(normalize(raw)) == 3
    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    assert score_call(raw, {}, card, None).item("greeting").passed


def test_pinyin_keywords_survive_asr_homophones():
    heard = segs((A, 0, 5000, "根严附数一下，您反映的是夜间施工。"), (A, 5200, 9000, "现在为您转接腰腰零。"))
    cond = {"op": "keywords", "role": A, "match": "pinyin", "words": ["复述一下"]}
    assert evaluate(cond, ctx(heard)).matched and not evaluate({**cond, "match": "text"}, ctx(heard)).matched
    assert evaluate({"op": "regex", "role": A, "pattern": "转接110"}, ctx(heard)).matched  # 腰腰零 → 110
    assert normalize_text("来宾123-45热线") == "来宾12345热线"


def test_forbidden_wording_is_caught_when_asr_writes_a_homophone():
    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    opening = [(A, 0, 4000, "您好，来宾12345热线，15号为您服务。"), (C, 4500, 8000, "我家门口的路灯坏了。")]
    misheard = segs(*opening, (A, 8500, 12000, "这个不归我们馆，你到时候问接到吧。"))  # 管, 街道 (calls d020, d031)
    res = score_call(misheard, {}, card, None)
    assert not res.item("forbidden_phrases").passed and not res.item("first_contact").passed
    assert res.item("forbidden_phrases").evidence[0]["match"] == "不归我们馆"  # what was heard, not the pattern
    offered = segs(*opening, (A, 8500, 12000, "这个不归我们馆，我帮您转接供电局。"))  # the exclusions hold by sound too
    res = score_call(offered, {}, card, None)
    assert res.item("forbidden_phrases").passed and res.item("first_contact").passed
    looked_after = segs(*opening, (A, 8500, 12000, "您自己照顾好家里老人，路灯我们马上派单。"))  # 照 sounds like 找
    assert score_call(looked_after, {}, card, None).item("forbidden_phrases").passed


def test_dont_know_is_forbidden_as_an_answer_but_polite_in_a_question():
    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    opening = [(A, 0, 4000, "您好，来宾12345热线，15号为您服务。"), (C, 4500, 8000, "孩子上学的事归哪里管？")]
    for text, forbidden in [("这个我不知道你到时候问接到吧。", True),  # ASR dropped the comma (call d031)
                            ("这个我不知道，你问街道吧。", True),
                            ("不知道您是否方便留个电话？", False),
                            ("您知不知道具体是哪个学校？", False)]:
        res = score_call(segs(*opening, (A, 8500, 12000, text)), {}, card, None)
        assert res.item("forbidden_phrases").passed is not forbidden, text


def test_match_by_sound_keeps_positions_and_rejects_unknown_modes():
    heard = segs((A, 0, 5000, "你到时候问接到吧，谢谢。"))
    hit = evaluate({"op": "regex", "role": A, "match": "pinyin", "pattern": "问(街道|社区)吧"}, ctx(heard))
    assert hit.matched and hit.evidence[0]["match"] == "问接到吧"
    assert not evaluate({"op": "regex", "role": A, "pattern": "问(街道|社区)吧"}, ctx(heard)).matched
    with pytest.raises(RuleError, match="match"):
        evaluate({"op": "keywords", "role": A, "match": "sound", "words": ["街道"]}, ctx(heard))


def test_any_lists_the_evidence_of_every_alternative():
    """A forbidden item with an exact and a sound-alike alternative shows each violation, in call order."""
    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    call = segs((A, 0, 4000, "您好，来宾12345热线，15号为您服务。"), (C, 4500, 8000, "我家门口的路灯坏了。"),
                (A, 8500, 12000, "这个你自己去查。"), (C, 12500, 14000, "啊？"), (A, 14500, 18000, "这个不归我们管。"))
    res = score_call(call, {}, card, None)
    assert sorted(e["start_ms"] for e in res.item("forbidden_phrases").evidence) == [8500, 14500]
    anchor = {"any": [{"op": "regex", "role": A, "pattern": "不归我们管"}, {"op": "regex", "role": A, "pattern": "自己去查"}]}
    after = evaluate({"op": "keywords", "role": C, "words": ["啊"], "scope": {"after": anchor}}, ctx(call))
    assert after.matched  # the anchor is the earliest segment either alternative matches (8.5 s, not 14.5 s)


@pytest.mark.parametrize("reply, passed, handling", [
    ("我马上帮您三方转接110，请不要挂机。", True, "transferred"),
    ("现在为您转接幺幺零。", True, "transferred"),  # digits as read
    ("感谢您的来电，正在为您转接腰腰铃。", True, "transferred"),  # as the ASR wrote 幺幺零
    ("我马上帮您转进110，您不要挂电话。", True, "transferred"),
    ("这种情况您直接打110报警吧。", False, "self_referred"),
    ("您自己打一下110。", False, "self_referred"),
    ("我们这边没法给您转110。", False, "refused"),  # a negated transfer is none
    ("好的，我们登记一下。", False, "refused"),
])
def test_emergency_handling_transferred_self_referred_or_refused(reply, passed, handling):
    from qa.scorecard import default_scorecard
    from qa.scoring import score_call

    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    segs = [{"role": "agent", "start_ms": 0, "end_ms": 3000, "text": "您好，来宾12345政务服务便民热线，8号话务员为您服务。"},
            {"role": "caller", "start_ms": 3500, "end_ms": 8000, "text": "救命，有人拿刀在楼下砍人，现在还在打！"},
            {"role": "agent", "start_ms": 8500, "end_ms": 13000, "text": reply}]
    item = score_call(segs, {}, card, None).item("police_110")
    assert (item.applicable, item.passed, item.handling) == (True, passed, handling)


def test_a_referral_to_110_with_no_emergency_recognised_goes_to_a_person_not_a_deduction():
    """The caller's words garbled past recognition, the agent's "您直接打110" heard: the 110 item does not apply
    (nothing is deducted) and the call is marked for review; with no referral nothing is marked."""
    from qa.scorecard import default_scorecard
    from qa.scoring import REFERRAL_NOTE, score_call

    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})

    def result(reply):
        segs = [{"role": "agent", "start_ms": 0, "end_ms": 3000, "text": "您好，来宾12345热线，8号话务员为您服务。"},
                {"role": "caller", "start_ms": 3500, "end_ms": 8000, "text": "哥哥最惊讶，提发动了往危险大道方展开。"},
                {"role": "agent", "start_ms": 8500, "end_ms": 12000, "text": reply}]
        return score_call(segs, {}, card, None)

    referred = result("这种情况，您直接打110，我们这边是政务服务热线。")
    item = referred.item("police_110")
    assert not item.applicable and item.needs_review and referred.needs_review
    assert item.evidence[0]["note"] == REFERRAL_NOTE and item.evidence[0]["needs_review"]
    assert "police_110" not in {i.code for i in referred.failed()}  # no deduction for it
    plain = result("好的，我们登记一下。")
    assert not plain.item("police_110").needs_review and not plain.needs_review


def test_qa_recognises_an_emergency_as_the_live_copilot_does():
    """One owner for "is this a 110 call": the scorecard asks the copilot's detector, its rules turn by turn and, when
    scoring has the ticket classifier, the classifier's view of a garbled report."""
    from copilot.category import CategoryPrediction
    from qa.scorecard import default_scorecard
    from qa.scoring import score_call

    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})

    def item(caller_text, categorize=None):
        segs = [{"role": "agent", "start_ms": 0, "end_ms": 3000, "text": "您好，来宾12345热线，8号话务员为您服务。"},
                {"role": "caller", "start_ms": 3500, "end_ms": 8000, "text": caller_text},
                {"role": "agent", "start_ms": 8500, "end_ms": 12000, "text": "好的，我们登记一下。"}]
        return score_call(segs, {}, card, None, categorize=categorize).item("police_110")

    chased = item("有人拿着刀在楼下追人，你们快来！")
    assert chased.applicable and (chased.passed, chased.handling) == (False, "refused")
    assert not item("我上个月电动车被偷了，想问下立案进度。").applicable  # a past matter
    garbled = "我家楼下有人正在跳电动车的所，好几辆了。"  # 正在撬电动车的锁, as the ASR heard it
    assert not item(garbled).applicable

    def police_category(text):
        return CategoryPrediction("公安政法/治安管理/紧急警情转接", 0.4, "公安政法", 0.6, [])

    assert item(garbled, police_category).applicable


def test_an_emergency_the_agent_put_through_is_one_even_when_the_caller_was_not_understood():
    """The agent heard the caller better than the ASR did: a transfer to 110 makes the item apply (and pass)."""
    from qa.scorecard import default_scorecard
    from qa.scoring import score_call

    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    call = [{"role": "agent", "start_ms": 0, "end_ms": 3000, "text": "您好，12345热线，8号话务员为您服务。"},
            {"role": "caller", "start_ms": 3500, "end_ms": 8000, "text": "我还不不见了，双材还在走走走走。"},
            {"role": "agent", "start_ms": 8500, "end_ms": 13000, "text": "您先别慌，我马上为您转接110，请不要挂机。"}]
    item = score_call(call, {}, card, None).item("police_110")
    assert (item.applicable, item.passed, item.handling) == (True, True, "transferred")
    ordinary = call[:2] + [{"role": "agent", "start_ms": 8500, "end_ms": 13000, "text": "请您再说一遍好吗？"}]
    assert not score_call(ordinary, {}, card, None).item("police_110").applicable


def test_a_greeting_the_asr_misheard_goes_to_a_person_not_a_deduction():
    """8后话物人 or 天后发物员 for 8号话务员: 话务 (or 号/后…务) heard by sound with no work number is review, not a deduction; a
    greeting that names no operator at all is deducted, however it was heard."""
    from qa.scoring import MISHEARD_NOTE

    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})

    def greeting(text):
        return score_call(segs((A, 0, 3000, text), (C, 3500, 8000, "我家门口的路灯坏了。")), {}, card, None)

    for text in ("您好，来宾12345热线，8后话物人为您服务。", "您好，来宾12345热线，天后发物员为您服务。"):
        misheard = greeting(text)
        item = misheard.item("greeting")
        assert item.passed and item.needs_review and misheard.needs_review, text
        assert item.evidence[0]["note"] == MISHEARD_NOTE and item.evidence[0]["text"] == text
        assert "greeting" not in {i.code for i in misheard.failed()}
    for text in ("喂，12345，请讲。", "您好，请讲。", "喂，你好，什么事？", "您好，来宾12345热线，学后为您服务。"):
        item = greeting(text).item("greeting")
        assert not item.passed and not item.needs_review, text
    ok = greeting("您好，来宾12345热线，8号话务员为您服务。").item("greeting")
    assert ok.passed and not ok.needs_review


def test_a_read_back_announced_but_misheard_goes_to_a_person():
    from qa.scoring import MISHEARD_NOTE

    card = default_scorecard().model_copy(update={"similarity": "char_ngram"})
    opening = [(A, 0, 3000, "您好，来宾12345热线，8号话务员为您服务。"), (C, 3500, 8000, "社保卡丢了怎么补办？"),
               (A, 8500, 15000, "带身份证到社保服务窗口挂失补办，工本费二十元。")]
    misheard = score_call(segs(*opening, (A, 16000, 22000, "给您附受一下，您社保卡丢了，要带身份证去窗口。"),
                               (A, 23000, 25000, "感谢您的来电，再见！")), {}, card, None)
    assert misheard.item("read_back").passed and misheard.item("read_back").needs_review
    assert misheard.item("read_back").evidence[0]["note"] == MISHEARD_NOTE
    none = score_call(segs(*opening, (A, 16000, 18000, "感谢您的来电，再见！")), {}, card, None)
    assert not none.item("read_back").passed and not none.item("read_back").needs_review
