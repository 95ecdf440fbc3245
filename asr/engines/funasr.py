"""FunASR ONNX engine (Paraformer or SenseVoice) from a deployment-provided model directory.

No Mandarin FunASR recogniser weights ship in any installable package, so the
directory must be provided by the deployment (an exported ModelScope model:
``model.onnx`` or ``model_quant.onnx``, ``config.yaml``, ``am.mvn``, ``tokens.json``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from asr.audio import AudioError
from asr.engines.base import EngineCapabilities, Recognised
from asr.text import clean_hypothesis, punctuate

REQUIRED_FILES = ("config.yaml", "am.mvn", "tokens.json")
_SENSEVOICE_TAG = re.compile(r"<\|[^|]*\|>")


def check_model_dir(model_dir: Path) -> tuple[str, bool]:
    """Validate the directory; return (model kind from config.yaml, quantized)."""
    import yaml

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise AudioError(f"FunASR 模型目录不存在：{model_dir}")
    missing = [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]
    has_fp32, has_quant = (model_dir / "model.onnx").is_file(), (model_dir / "model_quant.onnx").is_file()
    if missing or not (has_fp32 or has_quant):
        missing += [] if (has_fp32 or has_quant) else ["model.onnx"]
        raise AudioError(f"FunASR 模型目录缺少文件：{'、'.join(missing)}")
    kind = str((yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8")) or {}).get("model", ""))
    return kind, not has_fp32


class FunAsrEngine:
    name = "funasr"
    capabilities = EngineCapabilities(
        streaming=False, partials=True, word_timestamps=False, confidence=False, languages=("zh",),
        sample_rates=(16000,),
    )

    def __init__(self, model_dir: Path, *, threads: int = 1):
        kind, quantize = check_model_dir(model_dir)
        if "SenseVoice" in kind:
            from funasr_onnx import SenseVoiceSmall as Model
        elif "Paraformer" in kind:
            from funasr_onnx import Paraformer as Model
        else:
            raise AudioError(f"不支持的 FunASR 模型类型：{kind or '未知'}（支持 Paraformer、SenseVoice）")
        self.kind = kind
        self._model = Model(str(model_dir), batch_size=1, quantize=quantize, intra_op_num_threads=threads)

    def transcribe(
        self, samples_16k: np.ndarray, *, hotwords: list[str] | None = None, prompt: str | None = None
    ) -> list[Recognised]:
        audio = np.asarray(samples_16k, dtype=np.float32)
        if audio.ndim != 1:
            raise AudioError("识别输入必须是单声道音频")
        kwargs = {"language": "zh", "textnorm": "withitn"} if "SenseVoice" in self.kind else {}
        result = self._model(audio, **kwargs)
        raw = result[0] if result else ""
        text = raw.get("preds", "") if isinstance(raw, dict) else str(raw)
        text = text[0] if isinstance(text, (list, tuple)) else text
        duration = len(audio) / 16000
        text = clean_hypothesis(_SENSEVOICE_TAG.sub("", text).replace(" ", ""), duration)
        if not text:
            return []
        return [Recognised(text=punctuate(text), start_ms=0, end_ms=int(duration * 1000), confidence=0.0)]
