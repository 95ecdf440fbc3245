"""Persistence, sampling, review/appeal workflow, overturn rates, and the live checker."""
from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from domain.accounts import ensure_roles
from domain.db import session_scope
from domain.errors import AppError
from domain.call_events import CallState, QAWarning, TranscriptComplete, TranscriptFinal
from domain.models import AuditLog, QAResult, Tenant, User
from qa import review, scorecard as sc
from qa.live import LiveQAChecker
from qa.review import SamplingRule
from qa.scoring import score_call

CARD = sc.default_scorecard().model_copy(update={"similarity": "char_ngram"})


def transcript(forbidden: bool = False):
    rows = [
        ("agent", 0, 7000, "您好，来宾12345政务服务便民热线，8号话务员为您服务，请问有什么可以帮您？"),
        ("caller", 7500, 12000, "我想问一下社保卡丢了怎么补办？"),
        ("agent", 12500, 20000, "这个你自己去查，网上都有。" if forbidden else "您带上身份证到社保卡窗口就可以补办。"),
        ("caller", 20500, 23000, "好的。"),
        ("agent", 23500, 32000, "跟您复述一下，您咨询的是社保卡补办，带身份证到窗口办理。"),
        ("agent", 32500, 37000, "感谢您的来电，再见。"),
    ]
    return [{"role": r, "start_ms": s, "end_ms": e, "text": t} for r, s, e, t in rows]


@pytest.fixture
def world(engine):
    with session_scope(engine) as s:
        t = Tenant(code="qa", name="QA")
        s.add(t)
        s.flush()
        ensure_roles(s)
        reviewer = User(tenant_id=t.id, username="rev", password_hash="x", role="qa_reviewer")
        agent = User(tenant_id=t.id, username="ag", password_hash="x", role="agent")
        s.add_all([reviewer, agent])
        s.flush()
        row = sc.save(s, t.id, CARD)
        return {"tenant": t.id, "reviewer": reviewer.id, "agent": agent.id, "card": row.id}


def test_scorecards_are_versioned_per_tenant(engine, world):
    with session_scope(engine) as s:
        row2 = sc.save(s, world["tenant"], CARD.with_params({"long_silence_ms": 12000}))
        assert row2.version == 2 and sc.active(s, world["tenant"]).id == row2.id
        assert sc.from_row(row2).params["long_silence_ms"].value == 12000


def test_sampling_review_overturn_and_appeal(engine, world):
    tid = world["tenant"]
    with session_scope(engine) as s:
        bad = review.store_result(s, tid, score_call(transcript(True), {}, CARD, None), world["card"],
                                  sampling=SamplingRule(random_percent=0))
        good = review.store_result(s, tid, score_call(transcript(), {}, CARD, None), world["card"],
                                   sampling=SamplingRule(random_percent=0))
        assert bad.sampled and bad.review_state == "queued" and bad.serious_service_violation
        assert not good.sampled and good.review_state == "auto"
        forced = review.store_result(s, tid, score_call(transcript(), {}, CARD, None), world["card"],
                                     sampling=SamplingRule(random_percent=100), rng=random.Random(1))
        assert forced.sampled
        assert [r.id for r in review.review_queue(s, tid)] == [bad.id, forced.id]  # serious first
        item = next(i for i in bad.items if i.item_code == "forbidden_phrases")
        assert item.evidence[0]["start_ms"] == 12500 and "你自己去查" in item.evidence[0]["match"]
        with pytest.raises(AppError):
            review.review_item(s, tid, item.id, world["reviewer"], "overturn", "")  # comment required
        review.review_item(s, tid, item.id, world["reviewer"], "overturn", "语境为转述来电人原话，不算推诿")
        fc = next(i for i in bad.items if i.item_code == "first_contact")
        review.review_item(s, tid, fc.id, world["reviewer"], "overturn", "同上")
        done = review.finish_review(s, tid, bad.id, world["reviewer"])
        assert done.review_state == "reviewed" and not done.serious_service_violation and done.score == 100
        detail = review.result_detail(s, tid, bad.id)
        assert next(i for i in detail["items"] if i["code"] == "forbidden_phrases")["effective_passed"]
        rates = {r["item_code"]: r for r in review.overturn_rates(s, tid)}
        assert rates["forbidden_phrases"]["overturn_rate"] == 1.0 and rates["greeting"]["overturn_rate"] == 0.0
        # agent side
        with pytest.raises(AppError):
            review.agent_respond(s, tid, good.id, world["agent"], "appeal", "")
        appealed = review.agent_respond(s, tid, good.id, world["agent"], "appeal", "客户未表达不满")
        assert appealed.agent_state == "appealed" and appealed.review_state == "queued"
        review.resolve_appeal(s, tid, good.id, world["reviewer"], upheld=False, comment="维持原判")
        with pytest.raises(AppError):
            review.agent_respond(s, tid, good.id, world["agent"], "acknowledge")
        review.agent_respond(s, tid, forced.id, world["agent"], "acknowledge")
        actions = {a.action for a in s.scalars(select(AuditLog).where(AuditLog.tenant_id == tid))}
        assert {"qa.review", "qa.review_finished", "qa.agent_appeal", "qa.appeal_resolved",
                "qa.agent_acknowledge"} <= actions
        with pytest.raises(AppError):
            review.result_detail(s, tid + 999, bad.id)  # other tenants see nothing
        assert s.scalar(select(QAResult).where(QAResult.id == bad.id)).serious_answer_error is False


def _final(role, start, end, text):
    return TranscriptFinal(call_id="c1", tenant_id=1, leg=role, role=role, start_ms=start, end_ms=end, text=text)


def test_live_checker_warns_before_the_call_ends():
    checker = LiveQAChecker(CARD, call_id="c1", tenant_id=1)
    assert checker.process(CallState(call_id="c1", state="talking")) == []
    out = checker.process(_final("agent", 0, 6000, "您好，来宾12345政务服务便民热线，8号话务员为您服务。"))
    assert out == []
    out = checker.process(_final("caller", 6500, 12000, "我楼下有人打架，有人流血了！"))
    assert [w.item for w in out] == ["police_110"] and isinstance(out[0], QAWarning)
    out = checker.process(_final("agent", 12500, 16000, "这个你自己去查吧。"))
    assert any(w.item == "forbidden_phrases" and "你自己去查" in w.message for w in out)
    out = checker.process(_final("agent", 16000, 16400, "这个不归我们馆。"))  # a homophone the ASR wrote
    assert any(w.item == "forbidden_phrases" and "不归我们馆" in w.message for w in out)
    out = checker.process(_final("agent", 16500, 20000, "还有什么问题吗？没有的话感谢您的来电。"))
    assert "read_back" in [w.item for w in out]
    # each requirement warns once
    assert "read_back" not in [w.item for w in checker.process(_final("agent", 20500, 22000, "感谢您的来电。"))]
    assert checker.close() == []


def test_live_checker_needs_an_embedder_for_semantic_rules():
    card = sc.parse({**CARD.model_dump(), "similarity": "embedder", "items": [
        {"code": "empathy", "name": "共情安抚", "weight": 5, "severity": "minor",
         "require": {"op": "semantic", "role": "agent", "examples": ["请您别着急"], "threshold": 0.9},
         "live": {"message": "请安抚来电人", "after_ms": 30000}}]})
    with pytest.raises(ValueError, match="embed"):
        LiveQAChecker(card)


def test_host_factories_use_the_tenant_scorecard_and_score_after_hang_up(engine, world):
    from domain.models import Call
    from qa.live import live_checker_factory
    from qa.service import PostCallScorer

    tid = world["tenant"]
    checker = live_checker_factory(engine)(CallState(call_id="u1", tenant_id=tid, state="talking"))
    assert checker.card.similarity == "char_ngram" and checker.tenant_id == tid
    with session_scope(engine) as s:
        s.add(Call(tenant_id=tid, call_uuid="u1", caller_number="13800000000"))
    scorer = PostCallScorer(engine)
    for seg in transcript(forbidden=True):
        scorer.process(TranscriptFinal(call_id="u1", tenant_id=tid, leg=seg["role"], role=seg["role"],
                                       start_ms=seg["start_ms"], end_ms=seg["end_ms"], text=seg["text"]))
    scorer.process(CallState(call_id="u1", tenant_id=tid, state="ended"))  # hang-up: ASR may still be behind
    with session_scope(engine) as s:
        assert s.scalars(select(QAResult).where(QAResult.tenant_id == tid)).first() is None
    scorer.process(TranscriptComplete(call_id="u1", tenant_id=tid, segments=len(transcript(forbidden=True))))
    with session_scope(engine) as s:
        from domain.models import TranscriptSegment

        row = s.scalars(select(QAResult).where(QAResult.tenant_id == tid)).one()
        assert row.call_id is not None and row.serious_service_violation and row.review_state == "queued"
        s.add(TranscriptSegment(tenant_id=tid, call_id=row.call_id, leg="agent", speaker_role="agent",
                                start_ms=0, end_ms=7000, text="您好"))
        s.flush()
        assert review.result_detail(s, tid, row.id)["transcript"][0]["end_ms"] == 7000


def test_answers_are_checked_against_entries_the_tenants_index_finds(engine, world, embedder):
    """QA scoring in the running system finds the KB entries through the tenant's hybrid index, with the ranker
    for ASR transcripts; the error names the entry by its external id, as the published KB does."""
    from knowledge.retrieval import HybridIndex
    from knowledge.service import published_docs
    from knowledge.transfer import seed_demo_kb
    from qa.service import index_retriever, published_kb, score_and_store

    tid = world["tenant"]
    with session_scope(engine) as s:
        seed_demo_kb(s, tid)
        index = HybridIndex(embedder)
        index.add(published_docs(s, tid))
        ids = {e.id for e in published_kb(s, tid)}
        found = index_retriever(s, tid, index)("我社保卡丢了，补一张要多少钱", 3)
        assert found[0][0] == "demo027" and {i for i, _ in found} <= ids
        segs = [{"role": "agent", "start_ms": 0, "end_ms": 3000, "text": "您好，来宾12345热线，15号话务员为您服务。"},
                {"role": "caller", "start_ms": 3500, "end_ms": 7000, "text": "我社保卡丢了，补一张要多少钱？"},
                {"role": "agent", "start_ms": 7500, "end_ms": 11000, "text": "首次补卡工本费50元，带身份证去网点办。"}]
        row = score_and_store(s, tid, segs, {}, index=index)
        item = next(i for i in review.result_detail(s, tid, row.id)["items"] if i["code"] == "answer_accuracy")
        assert not item["passed"] and row.serious_answer_error
        assert [(e["kb_entry_id"], e["error_type"]) for e in item["evidence"]] == [("demo027", "amount")]


def _published_card_entry(s, tid):
    from knowledge.service import EntryIn, create_entry, transition

    entry = create_entry(s, tid, EntryIn(title="社保卡遗失了怎么补办？", external_id="kb-card",
                                         body="本人携带身份证到社保卡窗口补办，补卡收取工本费20元。"))
    transition(s, tid, entry.id, "submit")
    transition(s, tid, entry.id, "publish")
    return entry


def test_an_entry_under_revision_is_still_checked_against_its_published_version(engine, world):
    """QA reads the knowledge the copilot suggests: editing a published entry (a new draft version) neither drops
    it from answer checking nor checks answers against the unpublished draft."""
    from knowledge.service import EntryIn, update_entry
    from qa.service import published_kb, score_and_store

    tid = world["tenant"]
    with session_scope(engine) as s:
        entry = _published_card_entry(s, tid)
        update_entry(s, tid, entry.id, EntryIn(title="社保卡遗失了怎么补办？", external_id="kb-card",
                                               body="本人携带身份证到社保卡窗口补办，补卡收取工本费30元。"))
        assert [(e.id, "20元" in e.answer) for e in published_kb(s, tid)] == [("kb-card", True)]
        segs = [{"role": "caller", "start_ms": 0, "end_ms": 3000, "text": "社保卡丢了补办要多少钱？"},
                {"role": "agent", "start_ms": 3500, "end_ms": 8000, "text": "补卡收取工本费30元，带身份证去窗口。"}]
        row = score_and_store(s, tid, segs, {})
        assert row.serious_answer_error


def test_an_error_in_speech_the_asr_was_unsure_of_goes_to_review_without_a_deduction(engine, world):
    """The same wrong amount: heard with confidence it is deducted; heard with low confidence it is shown as needing
    review, the answer item keeps its points and the call is queued for a person."""
    from qa.service import score_and_store

    tid = world["tenant"]
    with session_scope(engine) as s:
        _published_card_entry(s, tid)

        def scored(confidence):
            segs = [{"role": "caller", "start_ms": 0, "end_ms": 3000, "text": "社保卡丢了补办要多少钱？",
                     "confidence": 0.9},
                    {"role": "agent", "start_ms": 3500, "end_ms": 8000, "text": "补卡收取工本费30元，带身份证去窗口。",
                     "confidence": confidence}]
            row = score_and_store(s, tid, segs, {}, sampling=None)
            item = next(i for i in review.result_detail(s, tid, row.id)["items"] if i["code"] == "answer_accuracy")
            return row, item

        sure, sure_item = scored(0.92)
        assert sure.serious_answer_error and not sure_item["passed"]
        assert not any(e.get("needs_review") for e in sure_item["evidence"])
        unsure, unsure_item = scored(0.31)
        assert not unsure.serious_answer_error and unsure_item["passed"]
        assert unsure.review_state == "queued"  # a person decides, whatever the sampling rule
        flagged = [e for e in unsure_item["evidence"] if e.get("needs_review")]
        assert [(e["kb_entry_id"], e["error_type"], e["asr_confidence"]) for e in flagged] == [("kb-card", "amount", 0.31)]
        assert unsure.score > sure.score
