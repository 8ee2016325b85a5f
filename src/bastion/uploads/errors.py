"""The one error type of the upload endpoint: an HTTP status, a stable code and a message."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    field: str | None = None


@dataclass
class UploadError(Exception):
    status: int
    code: str
    message: str
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After on a 429
    limit: str = ""  # the name of the limit a 429 hit (bastion.uploads.limits)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.problems:
            self.problems = (Problem(self.code, self.message),)

    def __str__(self) -> str:
        return self.message


def bad_request(code: str, message: str, *, field: str | None = None) -> UploadError:
    return UploadError(400, code, message, (Problem(code, message, field),))


def forbidden(code: str, message: str) -> UploadError:
    return UploadError(403, code, message)


def too_large(code: str, message: str) -> UploadError:
    return UploadError(413, code, message)


def rate_limited(limit_name: str, message: str, headers: dict[str, str]) -> UploadError:
    return UploadError(
        429, f"ratelimit.{limit_name}", message, headers=dict(headers), limit=limit_name
    )
