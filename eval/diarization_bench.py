"""`hotline eval diarization`: DER (pyannote.metrics, 0.25 s collar each side) of the diarization.

Data: a synthetic-calls folder (``audio/*.flac`` stereo + ``refs/*.rttm``), scored on the
mono mix (embedding clustering) and on the stereo recording (channel split), or any folder
of ``NAME.wav`` + ``NAME.rttm`` pairs (scored as mono).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer


def _annotation(turns):
    from pyannote.core import Annotation, Segment

    a = Annotation()
    for t in turns:
        a[Segment(t.start_ms / 1000, t.end_ms / 1000)] = t.speaker
    return a


COLLAR_S = 0.5  # pyannote's collar is the total: 0.25 s each side of every reference boundary


def diarization_error(reference, hypothesis) -> dict:
    """DER of one recording (pyannote.metrics, the project's one DER), with its parts in seconds."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    parts = DiarizationErrorRate(collar=COLLAR_S)(_annotation(reference), _annotation(hypothesis), detailed=True)
    return {"der": round(parts["diarization error rate"], 4), "missed_s": round(parts["missed detection"], 3),
            "false_alarm_s": round(parts["false alarm"], 3), "confusion_s": round(parts["confusion"], 3),
            "reference_s": round(parts["total"], 3)}


def _role_accuracy(reference, hypothesis, roles) -> tuple[float, float]:
    """Seconds of reference speech whose predicted role is right, and total reference seconds (10 ms grid)."""
    import numpy as np

    end = max([t.end_ms for t in reference + hypothesis] + [0]) // 10 + 1
    ref, hyp = np.full(end, "", object), np.full(end, "", object)
    for t in reference:
        ref[t.start_ms // 10 : t.end_ms // 10] = t.speaker
    for t in hypothesis:
        hyp[t.start_ms // 10 : t.end_ms // 10] = roles.get(t.speaker, "unknown")
    spoken = ref != ""
    return float((ref[spoken] == hyp[spoken]).sum()) / 100, float(spoken.sum()) / 100


def run_diarization_bench(data: Path, *, limit: int | None = None) -> dict:
    from pyannote.metrics.diarization import DiarizationErrorRate

    from asr.audio import Audio, load_audio
    from asr.diarization import assign_roles, diarize, read_rttm
    from qa.labelled_calls import audio_path

    pairs = []  # (id, audio, reference turns, mode)
    if (data / "refs").is_dir() and (data / "audio").is_dir():
        for rttm in sorted((data / "refs").glob("*.rttm"))[:limit]:
            stereo = load_audio(audio_path(data, {"id": rttm.stem}))
            reference = next(iter(read_rttm(rttm).values()))
            pairs.append((rttm.stem, Audio(stereo.samples.mean(axis=0, keepdims=True), stereo.sample_rate), reference, "mono_mix"))
            pairs.append((rttm.stem, stereo, reference, "stereo_channels"))
    else:
        for rttm in sorted(data.glob("*.rttm"))[:limit]:
            wav = rttm.with_suffix(".wav")
            if wav.is_file():
                pairs.append((rttm.stem, load_audio(wav), next(iter(read_rttm(rttm).values())), "mono"))
    if not pairs:
        raise typer.BadParameter(f"目录中没有可评测的音频与 RTTM：{data}")

    metrics: dict[str, DiarizationErrorRate] = {}
    roles_right: dict[str, list[float]] = {}
    per_item, audio_s, wall = [], {}, {}
    for item_id, audio, reference, mode in pairs:
        started = time.perf_counter()
        hypothesis = diarize(audio)
        elapsed = time.perf_counter() - started
        metric = metrics.setdefault(mode, DiarizationErrorRate(collar=COLLAR_S))
        der = metric(_annotation(reference), _annotation(hypothesis))
        audio_s[mode] = audio_s.get(mode, 0.0) + audio.duration_s
        wall[mode] = wall.get(mode, 0.0) + elapsed
        row = {"id": item_id, "mode": mode, "der": round(der, 4), "speakers": len({t.speaker for t in hypothesis})}
        if {t.speaker for t in reference} <= {"agent", "caller"}:
            right, total = _role_accuracy(reference, hypothesis, assign_roles(hypothesis))
            acc = roles_right.setdefault(mode, [0.0, 0.0])
            acc[0] += right
            acc[1] += total
            row["role_accuracy"] = round(right / max(total, 1e-9), 4)
        per_item.append(row)
    return {
        "benchmark": "diarization",
        "data": str(data),
        "collar_s_each_side": COLLAR_S / 2,
        "der": {mode: round(abs(m), 4) for mode, m in metrics.items()},
        "role_accuracy": {mode: round(r / max(t, 1e-9), 4) for mode, (r, t) in roles_right.items()},
        "items": {mode: sum(1 for p in pairs if p[3] == mode) for mode in metrics},
        "audio_seconds": {mode: round(s, 1) for mode, s in audio_s.items()},
        "rtf": {mode: round(wall[mode] / audio_s[mode], 3) for mode in wall},
        "per_item": per_item,
    }


def register(eval_app: typer.Typer) -> None:
    @eval_app.command("diarization")
    def diarization_command(
        data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="合成通话目录或 wav+rttm 目录"),
        limit: Optional[int] = typer.Option(None, "--limit", help="只评测前 N 个通话"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="结果另存为 JSON 文件"),
    ) -> None:
        """说话人分离错误率（DER，0.25 秒容差）与角色判定准确率。"""
        from domain.json_output import emit

        emit(run_diarization_bench(data, limit=limit), json_out)
