"""Errors raised by project services."""


class ProjectError(Exception):
    code = "project.error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidProjectName(ProjectError):
    code = "project.name.invalid"


class NotAllowed(ProjectError):
    code = "project.forbidden"
    status = 403
