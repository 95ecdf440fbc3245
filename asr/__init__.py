"""Speech layer: audio input, VAD, ASR engines, streaming per leg, hot words and diarization."""
