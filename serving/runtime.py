"""What `hotline serve` runs beside the HTTP app: the bus consumers that turn transcript events
into stored segments, copilot suggestions and QA results."""
from __future__ import annotations

import logging

from fastapi import FastAPI

from serving.consumers import SegmentWriter

log = logging.getLogger("hotline.runtime")


class Runtime:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.consumers: list = []

    def start(self) -> "Runtime":
        bus, engine = self.app.state.bus, self.app.state.engine
        self.consumers = [SegmentWriter(bus, engine).start()]
        return self

    def stop(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        self.consumers = []
