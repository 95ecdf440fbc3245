"""CPU-bound request work (decoding audio, diarization, Whisper, embedding, parsing imports) runs in worker threads,
never on the event loop that serves every other request, probe and WebSocket.

At most ``HOTLINE_UPLOAD_WORKERS`` such jobs run at once, on a limiter of their own: a burst of uploads waits its turn
without holding threads of the pool that plain ``def`` endpoints share.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, TypeVar

from anyio import CapacityLimiter, to_thread

T = TypeVar("T")


async def run_heavy(app, fn: Callable[..., T], /, *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` in a worker thread of the app's upload pool; the caller awaits without blocking."""
    limiter = getattr(app.state, "upload_limiter", None)
    if limiter is None:
        limiter = app.state.upload_limiter = CapacityLimiter(app.state.settings.upload_workers)
    return await to_thread.run_sync(partial(fn, *args, **kwargs), limiter=limiter)
