"""The one way into Ray: join ``HOTLINE_RAY_ADDRESS`` when it is set, else start a local Ray.

Every process that submits Ray work (``hotline serve``, the live ASR client, batch scoring, benchmarks)
calls :func:`connect` first; it is idempotent, so a caller never needs to know whether another module of
the same process connected already.
"""
from __future__ import annotations

from domain.settings import Settings


def connect(settings: Settings, *, runtime_env: dict | None = None, num_cpus: int | None = None) -> None:
    """Join the configured cluster, or start a local one (``num_cpus`` limits a local Ray only)."""
    import ray

    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address, runtime_env=runtime_env, log_to_driver=False)
    else:
        # "local": a Ray of our own, never a cluster someone else started on this machine with ``ray start``
        ray.init(address="local", include_dashboard=False, runtime_env=runtime_env, log_to_driver=False,
                 num_cpus=num_cpus)
