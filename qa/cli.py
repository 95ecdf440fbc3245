"""`hotline qa ...` (scoring, tuning, scorecards) and `hotline kpi ...` (monthly assessment)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from qa.batch import AUDIO_SUFFIXES


def _tenant_id(session, code: str | None) -> int:
    from sqlalchemy import select

    from domain.errors import AppError
    from domain.models import Tenant
    from domain.settings import get_settings

    code = code or get_settings().default_tenant
    tid = session.scalar(select(Tenant.id).where(Tenant.code == code))
    if tid is None:
        raise AppError("tenant_not_found", f"租户不存在：{code}", 404)
    return tid


def _read_kb(path: Path | None) -> list[dict] | None:
    if path is None:
        return None
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _embedder():
    """Sentence embeddings for semantic rules: the configured KB embedder, as the live QA scorer uses it."""
    from domain.settings import get_settings
    from knowledge.embedding import configured_embedder

    return configured_embedder(get_settings()).queries


def transcript_of(path: Path, kb: Path | None = None) -> tuple[list, dict]:
    """Segments and metadata from an audio recording (ASR, with the hot words and phrases of ``kb``) or a JSON
    transcript (list of segments)."""
    if path.suffix.lower() in AUDIO_SUFFIXES:
        from asr.audio import load_audio
        from asr.engines import create_asr_engine
        from asr.hotwords import Lexicon
        from domain.settings import get_settings
        from knowledge.kbfile import load_kb_docs
        from qa.recording import transcribe_recording

        audio = load_audio(path)
        lexicon = Lexicon.from_kb((d.title, d.body) for d in load_kb_docs(kb)) if kb else None
        tr = transcribe_recording(audio, create_asr_engine(get_settings(), offline=True), lexicon=lexicon)
        return tr.segments, {"duration_ms": round(audio.duration_s * 1000), "source_mode": tr.mode}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"无法读取转写文件 {path}：{exc}") from exc
    if isinstance(data, dict):
        return data.get("segments", []), data.get("metadata", {})
    return data, {}


def _store_scorecard(session, tenant: str | None, scorecard: Path | None) -> int:
    """The tenant's id; a scorecard file becomes its new active version only when it differs from the active one."""
    from qa import scorecard as sc

    tid = _tenant_id(session, tenant)
    if scorecard:
        card, current = sc.load_file(scorecard), sc.active(session, tid)
        if current is None or sc.from_row(current).model_dump(exclude={"version"}) != card.model_dump(
                exclude={"version"}):
            sc.save(session, tid, card)
    return tid


def _store(session, tenant_id: int, segments: list, metadata: dict, embed) -> int:
    from qa.service import score_and_store

    return score_and_store(session, tenant_id, segments, metadata, embed=embed).id


def _score_folder(folder: Path, *, scorecard: Path | None, kb: Path | None, store: bool, tenant: str | None,
                  json_out: Path | None, cpus: int) -> None:
    """Every recording in ``folder`` as a Ray task (ASR, diarization and, unless stored, scoring); one JSON line
    per call on stdout as each finishes, failures reported per call; with ``--store`` each result is written to
    the database as it arrives."""
    from domain.db import session_scope
    from domain.settings import get_settings
    from qa import batch, scorecard as sc

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise typer.BadParameter(f"目录中没有录音文件（{'/'.join(sorted(s[1:] for s in AUDIO_SUFFIXES))}）：{folder}")
    settings = get_settings()
    lexicon = None
    if kb:
        from asr.hotwords import Lexicon
        from knowledge.kbfile import load_kb_docs

        lexicon = Lexicon.from_kb((d.title, d.body) for d in load_kb_docs(kb))
    scoring = None if store else batch.Scoring(sc.load_file(scorecard) if scorecard else sc.default_scorecard(),
                                               _read_kb(kb))
    embed = _embedder() if store else None
    tid = None
    if store:
        with session_scope() as session:
            tid = _store_scorecard(session, tenant, scorecard)
    jobs = [batch.Job(p.name, str(p.resolve())) for p in files]
    rows, failed = [], 0
    outcomes = batch.run(jobs, settings, lexicon=lexicon, scoring=scoring, num_cpus=cpus or None)
    for outcome in batch.track(outcomes, len(jobs), "质检评分"):
        row: dict = {"file": outcome.key, "node_id": outcome.node_id}
        if outcome.ok and store:
            try:
                with session_scope() as session:  # durable before it is reported
                    row["result_id"] = _store(session, tid, outcome.segments, outcome.metadata, embed)
            except Exception as exc:  # noqa: BLE001 - one call's bad transcript must not stop the batch
                outcome.error = f"保存失败：{getattr(exc, 'message', exc)}"
        if outcome.ok:
            row.update({"metadata": outcome.metadata, **(outcome.result or {})})
        else:
            failed += 1
            row["error"] = outcome.error
            typer.echo(f"{outcome.key}：{outcome.error}", err=True)
        rows.append(row)
        typer.echo(json.dumps(row, ensure_ascii=False, default=str))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rows, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    typer.echo(f"共 {len(jobs)} 通：成功 {len(jobs) - failed} 通，失败 {failed} 通", err=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    qa_app = typer.Typer(help="通话质检：评分、调参、评分表", no_args_is_help=True)
    card_app = typer.Typer(help="评分表管理", no_args_is_help=True)
    kpi_app = typer.Typer(help="月度业务考核（服务考核表、结算报表）", no_args_is_help=True)
    app.add_typer(qa_app, name="qa")
    qa_app.add_typer(card_app, name="scorecard")
    app.add_typer(kpi_app, name="kpi")

    @qa_app.command("score")
    def score_cmd(
        path: Path = typer.Argument(..., exists=True, help="录音（立体声分轨或单声道）、转写 JSON，或录音文件目录（批量）"),
        scorecard: Optional[Path] = typer.Option(None, help="评分表文件（默认：租户当前评分表 / 内置 12345 评分表）"),
        kb: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                          help="知识库 JSONL（用于解答准确性，及识别录音时的热词和短语修复）"),
        store: bool = typer.Option(False, help="结果写入数据库（质检结果、复核队列）"),
        tenant: Optional[str] = typer.Option(None, help="租户代码"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="结果另存为 JSON 文件"),
        cpus: int = typer.Option(0, help="批量时本地 Ray 使用的核数（0 = 全部；已设 HOTLINE_RAY_ADDRESS 时用整个集群）"),
    ) -> None:
        """对一个录音或转写文件打分，输出逐项结果和证据；给出目录时，目录内每个录音作为一个 Ray 任务并行评分。"""
        if path.is_dir():
            _score_folder(path, scorecard=scorecard, kb=kb, store=store, tenant=tenant, json_out=json_out,
                          cpus=cpus)
            return
        from domain.json_output import emit
        from qa import scorecard as sc
        from qa.scoring import score_call

        segments, metadata = transcript_of(path, kb)
        embed = _embedder()
        if store:
            from domain.db import session_scope
            from qa.review import result_detail

            with session_scope() as session:
                tid = _store_scorecard(session, tenant, scorecard)
                emit(result_detail(session, tid, _store(session, tid, segments, metadata, embed)), json_out)
            return
        card = sc.load_file(scorecard) if scorecard else sc.default_scorecard()
        result = score_call(segments, metadata, card, _read_kb(kb), embed=embed)
        emit({"file": str(path), "metadata": metadata, **result.to_dict()}, json_out)

    @qa_app.command("tune")
    def tune_cmd(
        data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="带标注的合成通话目录"),
        param: str = typer.Option(..., "--param", help="评分表参数名，如 long_silence_ms"),
        scorecard: Optional[Path] = typer.Option(None, help="评分表文件（默认内置 12345 评分表）"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="结果另存为 JSON 文件"),
    ) -> None:
        """在标注通话上网格搜索一个阈值参数（以相关评分项的一致率为目标）。"""
        from qa.labelled_calls import expected_items, load_calls, load_kb, metadata_of, reference_segments
        from domain.json_output import emit
        from qa import scorecard as sc
        from qa.scoring import tune

        card = sc.load_file(scorecard) if scorecard else sc.default_scorecard()
        calls = load_calls(data)
        segs = [reference_segments(d) for d in calls]
        emit(tune(card, param, list(zip(segs, [metadata_of(d) for d in calls])),
                  [expected_items(d, card) for d in calls], kb=load_kb(data), embed=_embedder()), json_out)

    @card_app.command("import")
    def card_import(file: Path = typer.Argument(..., exists=True, dir_okay=False),
                    tenant: Optional[str] = typer.Option(None, help="租户代码")) -> None:
        """导入评分表（YAML/JSON），保存为该租户的新版本并启用。"""
        from domain.db import session_scope
        from qa import scorecard as sc

        card = sc.load_file(file)
        with session_scope() as session:
            row = sc.save(session, _tenant_id(session, tenant), card)
            typer.echo(f"评分表 {row.name} 第 {row.version} 版已启用")

    @card_app.command("export")
    def card_export(out: Path = typer.Argument(...), tenant: Optional[str] = typer.Option(None, help="租户代码")) -> None:
        """导出租户当前启用的评分表（YAML）。"""
        import yaml

        from domain.db import session_scope
        from qa.service import active_scorecard

        with session_scope() as session:
            row = active_scorecard(session, _tenant_id(session, tenant))
            out.write_text(yaml.safe_dump(row.definition, allow_unicode=True, sort_keys=False), encoding="utf-8")
            typer.echo(f"已导出 {row.name} 第 {row.version} 版 → {out}")

    @kpi_app.command("compute")
    def kpi_compute(month: str = typer.Argument(..., help="YYYY-MM"),
                    tenant: Optional[str] = typer.Option(None, help="租户代码"),
                    json_out: Optional[Path] = typer.Option(None, "--json")) -> None:
        """按合同考核办法计算某月 11 项指标、总分、等级系数和月服务费。"""
        from domain.db import session_scope
        from domain.json_output import emit
        from qa.kpi import compute_month

        with session_scope() as session:
            emit(compute_month(session, _tenant_id(session, tenant), month).to_dict(), json_out)

    @kpi_app.command("add-entry")
    def kpi_add(month: str = typer.Argument(...), kind: str = typer.Argument(..., help="commendation|incident|leaver|complaint|rating_exclusion|override"),
                value: float = typer.Argument(...), note: str = typer.Option(..., help="说明（必填）"),
                field: Optional[str] = typer.Option(None, help="override 时要覆盖的数据项"),
                actor: str = typer.Option("cli", help="录入人"),
                tenant: Optional[str] = typer.Option(None, help="租户代码")) -> None:
        """手工录入考核数据（写入审计日志）。"""
        from domain.db import session_scope
        from qa.kpi import add_manual_entry

        with session_scope() as session:
            entry = add_manual_entry(session, _tenant_id(session, tenant), month, kind, value, note,
                                     actor_name=actor, field_name=field)
            typer.echo(json.dumps(entry, ensure_ascii=False))

    @kpi_app.command("export")
    def kpi_export(months: list[str] = typer.Argument(..., help="一个或多个 YYYY-MM"),
                   xlsx: Optional[Path] = typer.Option(None, help="XLSX 输出路径"),
                   pdf: Optional[Path] = typer.Option(None, help="PDF 输出路径"),
                   tenant: Optional[str] = typer.Option(None, help="租户代码")) -> None:
        """导出服务考核表和结算报表（先重新计算各月）。"""
        from domain.db import session_scope
        from domain.models import Tenant
        from qa.kpi import compute_month
        from qa.kpi_export import to_pdf, to_xlsx

        if not xlsx and not pdf:
            raise typer.BadParameter("请至少指定 --xlsx 或 --pdf")
        with session_scope() as session:
            tid = _tenant_id(session, tenant)
            name = session.get(Tenant, tid).name
            reports = [compute_month(session, tid, m) for m in months]
        if xlsx:
            xlsx.write_bytes(to_xlsx(reports, name))
        if pdf:
            pdf.write_bytes(to_pdf(reports, name))
        typer.echo("已导出：" + "、".join(str(p) for p in (xlsx, pdf) if p))
