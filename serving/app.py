"""The FastAPI application: middleware, error shape, health and metrics, and the area routers."""
from __future__ import annotations

import importlib
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.db import make_db_engine, session_factory, upgrade
from domain.errors import AppError
from domain.pii import mask_pii
from domain.settings import Settings, get_settings
from serving.health import READY_NAMES, OperationsCollector, readiness
from serving.event_bus import LocalBus, RedisBus, authkey_for, socket_path
from serving.input_errors import field_errors, summary
from serving.desk import LiveDesks
from serving.runtime import Runtime
from serving.ui import mount_ui

log = logging.getLogger("hotline.api")

ROUTER_MODULES: list[str] = [
    "serving.api.auth",
    "serving.api.admin",
    "serving.api.call_reports",
    "serving.api.evaluations",
    "serving.api.callers",
    "serving.api.recordings",
    "serving.api.directory",
    "serving.api.live",
    "serving.api.tickets",
    "serving.api.integrations",
    "serving.api.telephony",
    "serving.api.knowledge",
    "serving.api.copilot",
    "serving.api.qa",
    "serving.api.kpi",
]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type", 429: "too_many_requests"}
_HTTP_MESSAGES = {400: "请求格式错误", 401: "请先登录", 403: "无权访问", 404: "资源不存在", 405: "不支持该请求方法",
                  413: "请求体过大", 415: "不支持的内容类型", 429: "请求过于频繁"}


def _error(code: str, message: str, status: int, detail: dict | None = None) -> JSONResponse:
    return JSONResponse(AppError(code, message, status, detail).to_dict(), status_code=status,
                        headers=SECURITY_HEADERS)


def create_app(settings: Settings | None = None, engine: Engine | None = None, *, live: bool = False) -> FastAPI:
    """The API app.  ``live=True`` also runs the bus consumers of live calls (as `hotline serve` does)."""
    settings = settings or get_settings()
    engine = engine or make_db_engine(settings.sqlalchemy_url)

    bus = RedisBus(settings.redis_url) if settings.event_bus == "redis" else LocalBus()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        upgrade(str(engine.url.render_as_string(hide_password=False)))
        if isinstance(bus, LocalBus):
            bus.serve_socket(socket_path(settings.data_dir), authkey_for(settings.data_dir))
        runtime = Runtime(app).start() if live else None
        desks = app.state.desks.start()
        yield
        if runtime is not None:
            runtime.stop()
        desks.stop()
        bus.close()
        engine.dispose()

    app = FastAPI(title="12345 热线语音智能平台 API", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.bus = bus
    app.state.desks = LiveDesks(bus)  # each agent's call in hand, restored on reload

    registry = CollectorRegistry()
    requests_total = Counter("hotline_http_requests_total", "HTTP requests", ["method", "status"], registry=registry)
    latency = Histogram("hotline_http_request_seconds", "HTTP request latency", ["method"], registry=registry)
    registry.register(OperationsCollector(settings, engine))
    app.state.metrics_registry = registry

    @app.middleware("http")
    async def guard(request: Request, call_next):
        started = time.perf_counter()
        limit = settings.max_upload_bytes if "multipart/form-data" in request.headers.get("content-type", "") \
            or request.url.path.endswith("/upload") else settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = _error("payload_too_large", f"请求体过大（上限 {limit // 1000} KB）", 413)
        elif length is None and request.method in {"POST", "PUT", "PATCH"} and \
                request.headers.get("transfer-encoding", "").lower() == "chunked":
            response = _error("length_required", "请提供 Content-Length", 411)
        else:
            response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        requests_total.labels(request.method, str(response.status_code)).inc()
        latency.labels(request.method).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError):
        return _error(exc.code, exc.message, exc.status, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        if any(err.get("type") == "json_invalid" for err in exc.errors()):
            return _error("malformed_json", "JSON 格式错误", 400)
        fields = field_errors(exc.errors())
        return _error("validation_error", summary(fields), 422, {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(code, _HTTP_MESSAGES.get(exc.status_code, "请求失败"), exc.status_code)

    @app.exception_handler(UnicodeError)
    async def encoding_error(_request: Request, _exc: UnicodeError):
        # text that cannot be encoded (a lone surrogate such as "\ud800" in JSON) only comes from the request
        return _error("bad_encoding", "请求包含无法处理的字符（如不成对的代理字符），请检查输入内容", 400)

    @app.exception_handler(DataError)
    async def data_error(_request: Request, _exc: DataError):
        # the database refused a value of the request (a number out of range, text too long for its column)
        return _error("bad_value", "输入的数值或文本超出允许范围", 400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", mask_pii(str(request.url.path)))
        return _error("internal_error", "系统内部错误，请稍后重试", 500)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        checks = readiness(settings, engine)  # each configured dependency (serving.health)
        failing = [name for name, check in checks.items() if not check["ok"]]
        if failing:
            return _error("not_ready", f"依赖不可用：{'、'.join(READY_NAMES.get(n, n) for n in failing)}", 503,
                          {"checks": checks})
        return JSONResponse({"status": "ready", "checks": checks})

    @app.get("/metrics", tags=["ops"])
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router)
    mount_ui(app)
    return app
