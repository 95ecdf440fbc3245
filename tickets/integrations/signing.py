"""HMAC-SHA256 request signing with key rotation, shared by every integration channel.

A request carries three headers::

    X-Hotline-Key:        key id (which shared secret signed it)
    X-Hotline-Timestamp:  Unix seconds
    X-Hotline-Signature:  hex HMAC-SHA256(secret, METHOD \\n PATH \\n TIMESTAMP \\n hex SHA-256(body))

The signer always uses the ring's *active* key; the verifier accepts any key still in its ring. Rotation is
therefore: add the new key to both rings, switch ``active`` on the sender, and remove the old key once no
in-flight message can still carry it. Timestamps outside ``max_skew_s`` are rejected (replay protection).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

from domain.errors import AppError
from domain.settings import Settings

KEY_HEADER = "X-Hotline-Key"
TS_HEADER = "X-Hotline-Timestamp"
SIG_HEADER = "X-Hotline-Signature"


@dataclass(frozen=True)
class KeyRing:
    active: str
    keys: dict[str, str] = field(default_factory=dict)
    max_skew_s: int = 300


def keyring(settings: Settings, channel: str) -> KeyRing:
    """The channel's ring from ``HOTLINE_INTEGRATION_KEYS``; an unconfigured channel has no keys (rejects all)."""
    config = json.loads(settings.integration_keys or "{}").get(channel, {})
    return KeyRing(active=config.get("active", ""), keys=dict(config.get("keys", {})))


def _mac(secret: str, method: str, path: str, ts: str, body: bytes) -> str:
    message = f"{method.upper()}\n{path}\n{ts}\n{hashlib.sha256(body).hexdigest()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(ring: KeyRing, method: str, path: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Headers that authenticate ``body`` sent to ``path`` with the ring's active key."""
    if ring.active not in ring.keys:
        raise AppError("signing_key_missing", "未配置有效的签名密钥", 500)
    ts = str(int(now if now is not None else time.time()))
    return {KEY_HEADER: ring.active, TS_HEADER: ts, SIG_HEADER: _mac(ring.keys[ring.active], method, path, ts, body)}


def verify(ring: KeyRing, method: str, path: str, body: bytes, headers, now: float | None = None) -> str:
    """The key id that signed the request, or ``AppError('bad_signature', 401)``."""
    key_id, ts, sig = headers.get(KEY_HEADER, ""), headers.get(TS_HEADER, ""), headers.get(SIG_HEADER, "")
    secret = ring.keys.get(key_id)
    if not secret or not ts.isdigit() or not sig:
        raise AppError("bad_signature", "请求签名无效或缺失", 401)
    if abs((now if now is not None else time.time()) - int(ts)) > ring.max_skew_s:
        raise AppError("bad_signature", "请求时间戳超出允许范围（可能是重放）", 401)
    if not hmac.compare_digest(_mac(secret, method, path, ts, body), sig):
        raise AppError("bad_signature", "请求签名无效或缺失", 401)
    return key_id
