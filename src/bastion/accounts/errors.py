"""Errors raised by account services."""


class AccountError(Exception):
    code = "account.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class UserExists(AccountError):
    code = "account.exists"


class InvalidAccountData(AccountError):
    code = "account.invalid"
