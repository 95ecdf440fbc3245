"""One error shape for the whole system: a machine code plus a Simplified-Chinese message."""
from __future__ import annotations


class AppError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, detail: dict | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail or {}

    def to_dict(self) -> dict:
        body = {"error": {"code": self.code, "message": self.message}}
        if self.detail:
            body["error"]["detail"] = self.detail
        return body


def not_found(what: str = "记录") -> AppError:
    return AppError("not_found", f"{what}不存在", 404)
