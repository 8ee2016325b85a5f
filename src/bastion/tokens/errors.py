"""Errors raised by token services (the codec's own errors live in bastion.security.errors)."""


class TokenServiceError(Exception):
    code = "token.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenNameInUse(TokenServiceError):
    code = "token.name-in-use"


class InvalidTokenRequest(TokenServiceError):
    code = "token.invalid-request"
