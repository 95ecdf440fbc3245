"""Speech engines behind one interface; ``create_asr_engine`` picks one from settings."""
from __future__ import annotations

import logging

from asr.engines.base import AsrEngine, EngineCapabilities, Recognised

__all__ = ["AsrEngine", "EngineCapabilities", "Recognised", "create_asr_engine", "engine_names"]


def engine_names() -> tuple[str, ...]:
    return ("faster-whisper", "funasr")


def create_asr_engine(settings, *, offline: bool = False) -> AsrEngine:
    """Build the engine named by ``settings.asr_engine`` (model from ``settings.asr_model_dir`` or bundled).

    ``offline``: for whole recordings rather than live legs; accuracy over latency (Whisper encodes every
    utterance in its full window, as live legs do on a GPU: ``Settings.live_full_window``)."""
    from asr.audio import AudioError

    name = settings.asr_engine
    if name == "faster-whisper":
        from asr.engines.whisper import WINDOW_FRAMES, WhisperEngine, WhisperParams, assemble_bundled_model

        model_dir = settings.asr_model_dir or assemble_bundled_model("base", settings.data_dir / "models")
        if settings.asr_mandarin_vocabulary and settings.asr_language == "zh" and not offline:  # latency-bound
            from asr.engines.mandarin_vocab import restrict_model

            try:
                model_dir = restrict_model(model_dir, settings.data_dir / "models")
            except (AudioError, ValueError, KeyError) as exc:  # a model layout this rewrite does not know
                logging.getLogger(__name__).warning("使用完整词表的模型（无法裁剪输出层：%s）", exc)
        params = WhisperParams(
            beam_size=settings.asr_beam_size,
            language=settings.asr_language,
            device=settings.asr_device,
            compute_type=settings.asr_compute_type,
            threads=settings.asr_threads,
            context_frames=WINDOW_FRAMES if offline or settings.live_full_window else None,
            previous_text_tokens=settings.asr_previous_text_tokens,
        )
        return WhisperEngine(model_dir, params)
    if name == "funasr":
        from asr.engines.funasr import FunAsrEngine

        if settings.asr_model_dir is None:
            raise AudioError("FunASR 引擎需要配置模型目录（HOTLINE_ASR_MODEL_DIR）")
        return FunAsrEngine(settings.asr_model_dir, threads=settings.asr_threads)
    raise AudioError(f"未知的语音识别引擎：{name}（可选：{'、'.join(engine_names())}）")
