"""Persisting scores and the human review workflow.

- ``store_result``: a ``ScoreResult`` → ``QAResult`` + ``QAItemResult`` rows with evidence.
- Sampling: every result with a serious violation or evidence the ASR was unsure of (``needs_review``), plus a
  random N %, go to the review queue.
- Reviewers confirm or overturn each item with a comment (``QAReview``); the result's flags are
  then recomputed from the reviewed items.  Agents acknowledge or appeal (申诉).
- ``overturn_rates``: per item, how often reviewers overturn the automatic verdict.
- Versions: re-scoring a call supersedes its current result (``superseded_at``) and stores the new one as the
  next ``version``; the review queue, result lists and the KPI count current results only.  Reviews stay with the
  version they judged; a sampled or reviewed call stays in the sample (its new version is queued for a person),
  and an open appeal moves to the new version.  Superseded versions are read-only.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import audit
from domain.errors import AppError, not_found
from domain.models import QAItemResult, QAResult, QAReview, Scorecard, TranscriptSegment, utcnow
from qa.scoring import ScoreResult, uses_answer_errors

VERDICTS = ("confirm", "overturn")


@dataclass(frozen=True)
class SamplingRule:
    all_serious: bool = True  # every serious violation (service or answer) is reviewed
    random_percent: float = 5.0  # plus this share of the remaining calls


def store_result(session: Session, tenant_id: int, result: ScoreResult, scorecard_id: int, *,
                 call_id: int | None = None, recording_id: int | None = None, agent_id: int | None = None,
                 sampling: SamplingRule | None = SamplingRule(), rng: random.Random | None = None) -> QAResult:
    row = QAResult(tenant_id=tenant_id, call_id=call_id, recording_id=recording_id, scorecard_id=scorecard_id,
                   agent_id=agent_id, score=result.score,
                   serious_service_violation=result.serious_service_violation,
                   serious_answer_error=result.serious_answer_error)
    for item in result.items:
        row.items.append(QAItemResult(tenant_id=tenant_id, item_code=item.code, item_name=item.name,
                                      passed=item.passed or not item.applicable, severity=item.severity,
                                      weight=item.weight,
                                      evidence=item.evidence if item.applicable else [{"note": "不适用"}]))
    # a call with evidence the ASR was unsure of always goes to a person; otherwise the sampling rule decides
    if result.needs_review or (sampling is not None and should_sample(row, sampling, rng or random.Random())):
        row.sampled, row.review_state = True, "queued"
    if call_id is not None:
        _supersede(session, tenant_id, call_id, row)
    session.add(row)
    session.flush()
    return row


def _supersede(session: Session, tenant_id: int, call_id: int, row: QAResult) -> None:
    """Make ``row`` the call's current result: the previous one becomes a superseded version."""
    previous = session.scalar(select(QAResult).where(QAResult.tenant_id == tenant_id, QAResult.call_id == call_id,
                                                     QAResult.superseded_at.is_(None)).with_for_update())
    if previous is None:
        return
    previous.superseded_at = utcnow()
    session.flush()  # before the new row: one current result per call (uq_qa_results_current_call)
    row.version = previous.version + 1
    if previous.sampled:  # a call in the review sample stays in it: a person looks at the new score
        row.sampled, row.review_state = True, "queued"
    if previous.agent_state == "appealed":  # an open appeal is about the call, so the newest score answers it
        row.agent_state, row.sampled, row.review_state = "appealed", True, "queued"
    audit.record(session, "qa.rescored", tenant_id=tenant_id, actor_id=_actor_id(session), entity="qa_result",
                 entity_id=previous.id, before={"result_id": previous.id, "version": previous.version,
                                                "score": previous.score},
                 after={"version": row.version, "score": row.score, "call_id": call_id})


def _actor_id(session: Session) -> int | None:
    actor = session.info.get("actor")
    return actor.user.id if actor else None


def _current(row: QAResult) -> QAResult:
    """Refuse changes to a superseded version."""
    if row.superseded_at is not None:
        raise AppError("result_superseded", f"该质检结果（第{row.version}版）已被重新评分取代，请处理最新版本", 409)
    return row


def should_sample(row: QAResult, rule: SamplingRule, rng: random.Random) -> bool:
    if rule.all_serious and (row.serious_service_violation or row.serious_answer_error):
        return True
    return rng.random() * 100 < rule.random_percent


def _get_result(session: Session, tenant_id: int, result_id: int) -> QAResult:
    row = session.get(QAResult, result_id)
    if row is None or row.tenant_id != tenant_id:
        raise not_found("质检结果")
    return row


def review_queue(session: Session, tenant_id: int, limit: int = 50) -> list[QAResult]:
    """Queued results, serious ones first, oldest first."""
    q = (select(QAResult).where(QAResult.tenant_id == tenant_id, QAResult.review_state == "queued",
                                QAResult.superseded_at.is_(None))
         .order_by((QAResult.serious_service_violation | QAResult.serious_answer_error).desc(), QAResult.id)
         .limit(limit))
    return list(session.scalars(q))


def answer_codes(session: Session, scorecard_id: int) -> set[str]:
    card = session.get(Scorecard, scorecard_id)
    items = (card.definition or {}).get("items", []) if card else []
    return {i["code"] for i in items if uses_answer_errors(i.get("forbid") or i.get("require"))}


def latest_verdicts(session: Session, item_ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    if not item_ids:
        return out
    for rv in session.scalars(select(QAReview).where(QAReview.item_result_id.in_(item_ids)).order_by(QAReview.id)):
        out[rv.item_result_id] = rv.verdict
    return out


def effective_pass(item: QAItemResult, verdict: str | None) -> bool:
    """The automatic verdict, flipped when a reviewer overturned it."""
    return (not item.passed) if verdict == "overturn" else item.passed


def effective_flags(session: Session, row: QAResult) -> tuple[bool, bool]:
    """(serious service violation, serious answer error) after human review."""
    verdicts = latest_verdicts(session, [i.id for i in row.items])
    codes = answer_codes(session, row.scorecard_id)
    failed = [i for i in row.items if not effective_pass(i, verdicts.get(i.id))]
    service = any(i.severity == "serious" and i.item_code not in codes for i in failed)
    answer = any(i.item_code in codes for i in failed)
    return service, answer


def review_item(session: Session, tenant_id: int, item_result_id: int, reviewer_id: int, verdict: str,
                comment: str = "") -> QAReview:
    if verdict not in VERDICTS:
        raise AppError("invalid_verdict", "复核结论只能是“确认”或“推翻”", 422)
    item = session.get(QAItemResult, item_result_id)
    if item is None or item.tenant_id != tenant_id:
        raise not_found("质检项")
    if verdict == "overturn" and not comment.strip():
        raise AppError("comment_required", "推翻质检结论时必须填写复核意见", 422)
    _current(item.result)
    review = QAReview(tenant_id=tenant_id, item_result_id=item.id, reviewer_id=reviewer_id, verdict=verdict,
                      comment=comment.strip())
    session.add(review)
    session.flush()
    result = item.result
    reviewed = set(latest_verdicts(session, [i.id for i in result.items]))
    if all(i.id in reviewed for i in result.items):
        result.review_state = "reviewed"
    result.serious_service_violation, result.serious_answer_error = effective_flags(session, result)
    result.score = rescore(session, result)
    audit.record(session, "qa.review", tenant_id=tenant_id, actor_id=reviewer_id, entity="qa_item_result",
                 entity_id=item.id, after={"verdict": verdict, "comment": comment, "item": item.item_code})
    return review


def rescore(session: Session, row: QAResult) -> float:
    verdicts = latest_verdicts(session, [i.id for i in row.items])
    total = sum(i.weight for i in row.items) or 1.0
    lost = sum(i.weight for i in row.items if not effective_pass(i, verdicts.get(i.id)))
    return round(100.0 * (total - lost) / total, 2)


def finish_review(session: Session, tenant_id: int, result_id: int, reviewer_id: int) -> QAResult:
    """Close a review: items the reviewer did not touch count as confirmed."""
    row = _current(_get_result(session, tenant_id, result_id))
    verdicts = latest_verdicts(session, [i.id for i in row.items])
    for item in row.items:
        if item.id not in verdicts:
            session.add(QAReview(tenant_id=tenant_id, item_result_id=item.id, reviewer_id=reviewer_id,
                                 verdict="confirm", comment=""))
    session.flush()
    row.review_state = "reviewed"
    row.sampled = True
    row.serious_service_violation, row.serious_answer_error = effective_flags(session, row)
    row.score = rescore(session, row)
    audit.record(session, "qa.review_finished", tenant_id=tenant_id, actor_id=reviewer_id, entity="qa_result",
                 entity_id=row.id, after={"score": row.score})
    return row


AGENT_ACTIONS = {"acknowledge": "acknowledged", "appeal": "appealed"}


def agent_respond(session: Session, tenant_id: int, result_id: int, user_id: int, action: str,
                  comment: str = "") -> QAResult:
    if action not in AGENT_ACTIONS:
        raise AppError("invalid_action", "只能“确认”或“申诉”", 422)
    row = _current(_get_result(session, tenant_id, result_id))
    if row.agent_state in ("appeal_upheld", "appeal_rejected"):
        raise AppError("appeal_closed", "该质检结果的申诉已处理完毕", 409)
    if action == "appeal" and not comment.strip():
        raise AppError("comment_required", "申诉时必须填写申诉理由", 422)
    before = row.agent_state
    row.agent_state = AGENT_ACTIONS[action]
    if action == "appeal" and row.review_state == "auto":
        row.review_state, row.sampled = "queued", True
    audit.record(session, f"qa.agent_{action}", tenant_id=tenant_id, actor_id=user_id, entity="qa_result",
                 entity_id=row.id, before={"agent_state": before}, after={"agent_state": row.agent_state,
                                                                          "comment": comment})
    return row


def resolve_appeal(session: Session, tenant_id: int, result_id: int, reviewer_id: int, upheld: bool,
                   comment: str) -> QAResult:
    row = _current(_get_result(session, tenant_id, result_id))
    if row.agent_state != "appealed":
        raise AppError("no_appeal", "该质检结果没有待处理的申诉", 409)
    row.agent_state = "appeal_upheld" if upheld else "appeal_rejected"
    audit.record(session, "qa.appeal_resolved", tenant_id=tenant_id, actor_id=reviewer_id, entity="qa_result",
                 entity_id=row.id, after={"agent_state": row.agent_state, "comment": comment})
    return row


def overturn_rates(session: Session, tenant_id: int, since: datetime | None = None) -> list[dict]:
    """Per item code: reviewed items, overturned items and the overturn rate (latest verdict counts)."""
    q = (select(QAItemResult.item_code, QAItemResult.item_name, QAReview.item_result_id, QAReview.verdict)
         .join(QAReview, QAReview.item_result_id == QAItemResult.id)
         .where(QAItemResult.tenant_id == tenant_id).order_by(QAReview.id))
    if since is not None:
        q = q.where(QAReview.at >= since)
    latest: dict[int, tuple[str, str, str]] = {}
    for code, name, item_id, verdict in session.execute(q):
        latest[item_id] = (code, name, verdict)
    stats: dict[str, dict] = {}
    for code, name, verdict in latest.values():
        s = stats.setdefault(code, {"item_code": code, "item_name": name, "reviewed": 0, "overturned": 0})
        s["reviewed"] += 1
        s["overturned"] += verdict == "overturn"
    for s in stats.values():
        s["overturn_rate"] = round(s["overturned"] / s["reviewed"], 4)
    return sorted(stats.values(), key=lambda s: -s["overturn_rate"])


def result_detail(session: Session, tenant_id: int, result_id: int) -> dict:
    row = _get_result(session, tenant_id, result_id)
    verdicts = latest_verdicts(session, [i.id for i in row.items])
    reviews = session.scalars(select(QAReview).where(QAReview.item_result_id.in_([i.id for i in row.items]))
                              .order_by(QAReview.id)).all()
    transcript = [] if row.call_id is None else [
        {"role": t.speaker_role, "start_ms": t.start_ms, "end_ms": t.end_ms, "text": t.text}
        for t in session.scalars(select(TranscriptSegment).where(TranscriptSegment.call_id == row.call_id)
                                 .order_by(TranscriptSegment.start_ms))]
    return {
        "id": row.id, "call_id": row.call_id, "recording_id": row.recording_id, "agent_id": row.agent_id,
        "transcript": transcript,  # for listening along and jumping to evidence timestamps
        "scorecard_id": row.scorecard_id, "score": row.score, "sampled": row.sampled,
        "review_state": row.review_state, "agent_state": row.agent_state,
        "serious_service_violation": row.serious_service_violation,
        "serious_answer_error": row.serious_answer_error, "created_at": row.created_at.isoformat(),
        "version": row.version, "superseded_at": row.superseded_at.isoformat() if row.superseded_at else None,
        "versions": [] if row.call_id is None else [
            {"id": v.id, "version": v.version, "score": v.score, "review_state": v.review_state,
             "agent_state": v.agent_state, "created_at": v.created_at.isoformat(),
             "superseded_at": v.superseded_at.isoformat() if v.superseded_at else None}
            for v in session.scalars(select(QAResult).where(QAResult.tenant_id == tenant_id,
                                                            QAResult.call_id == row.call_id)
                                     .order_by(QAResult.version))],
        "items": [{"id": i.id, "code": i.item_code, "name": i.item_name, "passed": i.passed,
                   "effective_passed": effective_pass(i, verdicts.get(i.id)), "severity": i.severity,
                   "weight": i.weight, "evidence": i.evidence, "verdict": verdicts.get(i.id),
                   "reviews": [{"verdict": r.verdict, "comment": r.comment, "reviewer_id": r.reviewer_id,
                                "at": r.at.isoformat()} for r in reviews if r.item_result_id == i.id]}
                  for i in row.items],
    }
