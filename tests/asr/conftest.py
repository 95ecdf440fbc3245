"""ASR fixtures: the real Whisper-base engine loaded once, a cache dir for assembled models, test audio."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def asr_settings() -> Settings:
    # Reuse the repository's var/ cache so the 145 MB model is joined once per machine, not per run.
    return Settings(data_dir=REPO / "var", asr_engine="faster-whisper")


@pytest.fixture(scope="session")
def whisper_engine(asr_settings):
    from asr.engines import create_asr_engine

    return create_asr_engine(asr_settings)


@pytest.fixture(scope="session")
def mandarin_samples(shared_data) -> Path:
    path = shared_data / "mandarin_asr_samples"
    if not path.is_dir():
        pytest.skip(f"mandarin_asr_samples not found under {shared_data}")
    return path


@pytest.fixture(scope="session")
def synthetic_calls(shared_data) -> Path:
    path = shared_data / "synthetic_calls"
    if not path.is_dir():
        pytest.skip(f"synthetic_calls not found under {shared_data}")
    return path


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
