"""Errors of the signing app: one root, each leaf with a stable code and an actionable message."""

from __future__ import annotations


class SigningError(Exception):
    code = "tuf.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeyProblem(SigningError):
    code = "tuf.key"


class NotInitialized(SigningError):
    code = "tuf.not-initialized"


class AlreadyInitialized(SigningError):
    code = "tuf.already-initialized"


class ThresholdNotMet(SigningError):
    code = "tuf.threshold"
