"""`hotline eval ...`: each benchmark module registers its own command.

A module listed here exposes ``register(app: typer.Typer)`` and keeps heavy
imports inside its command body so ``hotline --help`` stays fast.
"""
from __future__ import annotations

import importlib

import typer

BENCHMARK_MODULES: list[str] = [
    "eval.asr_bench",
    "eval.diarization_bench",
    "eval.streaming_bench",
    "eval.calls_bench",
    "eval.retrieval_bench",
    "eval.category_bench",
    "eval.sms_bench",
    "eval.live_bench",
]

eval_app = typer.Typer(help="运行评测基准，输出 JSON。", no_args_is_help=True)
for _name in BENCHMARK_MODULES:
    importlib.import_module(_name).register(eval_app)
