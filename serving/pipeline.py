"""The live speech path, wired: bridge workers that keep their spools and put call events on the bus, ASR
followers (``asr.follower``) that decode on the Ray Serve ASR deployment (``serving.asr_service``) and
publish transcripts on the bus.

This is the entry point's wiring, so that telephony and speech name nothing of serving: ``hotline serve``
deploys the ASR on Ray and hands the supervisor the command lines of its children (:func:`start_live`), which
run :func:`main` here.

Children: ``python -m serving.pipeline worker …`` (``telephony.worker`` with :class:`EventSink`) and
``python -m serving.pipeline follower --index N`` (a follower on the running ASR deployment).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from sqlalchemy import select

from asr.hotwords import Lexicon
from domain.db import make_db_engine, session_scope
from domain.call_events import CallState
from domain.models import Tenant
from domain.settings import Settings, get_settings
from serving.event_bus import Publisher, publisher_for
from telephony.peer import LiveWiring


def tenant_lexicons(settings: Settings) -> Callable[[int], Lexicon]:
    """Each tenant's hot words and KB phrases, from its own published knowledge base
    (``knowledge.live.TenantLexicons``): built at start for every tenant and on first use for a new one, and
    rebuilt in the background when an entry is published or archived."""
    from knowledge.live import TenantLexicons

    engine = make_db_engine(settings.sqlalchemy_url)
    lexicons = TenantLexicons()

    def lexicon_of(tenant_id: int) -> Lexicon:
        with session_scope(engine) as session:
            return lexicons.get(session, tenant_id)

    with session_scope(engine) as session:
        tenant_ids = list(session.scalars(select(Tenant.id)))
    for tenant_id in tenant_ids:  # at start, not on a tenant's first call: a build takes seconds
        lexicon_of(tenant_id)
    return lexicon_of


class EventSink:
    """The bridge worker's sink for live ASR: call-state events go on the bus; the follower reads the spool."""

    reads_spool = True

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def on_call_event(self, event: CallState) -> None:
        self._publisher.publish(event)


def follower_status_path(data_dir: Path, index: int) -> Path:
    return Path(data_dir) / "telephony" / f"asr-follower-{index}.json"


def start_live(settings: Settings) -> LiveWiring:
    """Deploy the live ASR on Ray (joining ``HOTLINE_RAY_ADDRESS``, or starting a local Ray) and return what the
    supervisor runs for it (``hotline serve``, ``hotline telephony up``): the worker's command line (keeps spools,
    publishes call events), each follower's, and the environment that has the followers join that cluster."""
    from serving.asr_service import AsrService

    address = AsrService.start(settings).address
    return LiveWiring(worker_command=[sys.executable, "-m", __name__, "worker"],
                      follower_command=lambda index: [sys.executable, "-m", __name__, "follower", "--index",
                                                      str(index)],
                      follower_env={"HOTLINE_RAY_ADDRESS": address})


def _follower(argv: list[str]) -> None:
    from asr.follower import FollowerParams, SpoolFollower
    from asr.streaming import LegStream, StreamParams
    from asr.vad import SileroVad
    from domain.logs import configure_logging
    from domain.spool import SAMPLE_RATE
    from serving.asr_service import AsrService, RemoteEngine

    ap = argparse.ArgumentParser(description="hotline live ASR follower")
    ap.add_argument("--index", type=int, default=0, help="names this follower's log and status file")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--db", default="")
    args = ap.parse_args(argv)
    index = args.index
    update = {k: v for k, v in (("data_dir", args.data_dir), ("database_url", args.db)) if v}
    settings = get_settings().model_copy(update=update)
    params = FollowerParams.for_settings(settings)
    os.nice(params.nice)  # before any thread starts: every thread inherits it
    configure_logging(fmt=f"%(asctime)s asr{index} %(levelname)s %(message)s")
    engine = RemoteEngine(AsrService.connect(settings))
    lexicon_of = tenant_lexicons(settings) if settings.asr_hotwords else None

    def make_stream(call_id: str, tenant_id: int, leg: str) -> LegStream:
        return LegStream(engine, SileroVad(SAMPLE_RATE), call_id=call_id, tenant_id=tenant_id, leg=leg, role=leg,
                         sample_rate=SAMPLE_RATE, params=StreamParams(),
                         lexicon=lexicon_of(tenant_id) if lexicon_of else None)

    follower = SpoolFollower(settings.data_dir / "recordings" / "spool", publisher_for(settings), make_stream,
                             params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    status_path = follower_status_path(settings.data_dir, index)
    status_path.parent.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"event": "ready", "index": index, "pid": os.getpid()}), flush=True)
    follower.run(stop, status_path)


def _worker(argv: list[str]) -> None:
    from telephony import worker

    worker.main(argv, sink=EventSink(publisher_for(get_settings())))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    role, rest = (argv[0], argv[1:]) if argv else ("", [])
    if role not in ("worker", "follower"):
        raise SystemExit("usage: python -m serving.pipeline worker|follower [options]")
    (_worker if role == "worker" else _follower)(rest)


if __name__ == "__main__":
    main()
