"""Logging for every process: one handler, citizens' phone and ID numbers masked in every record, and control
characters escaped so that text from outside (a URL, a SIP header, a form field) cannot forge or split log lines."""
from __future__ import annotations

import logging
import re

from domain.pii import mask_pii

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LINE_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")  # all C0 controls but tab, DEL, NEL, LS, PS


def escape_controls(text: str) -> str:
    """``text`` on one line: CR, LF and other control characters written as escapes (``\\n``, ``\\x1b``)."""
    return _LINE_BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class PiiMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = escape_controls(mask_pii(record.getMessage()))
        record.args = None
        return True


def configure_logging(level: int = logging.INFO, fmt: str = FORMAT) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(PiiMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # probes optional CPU builds, noisily
