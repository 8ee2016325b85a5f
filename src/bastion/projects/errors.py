"""Errors raised by project services.

Each error has a stable ``code``, an HTTP ``status`` for views to map it to, and the ``field``
of the form it concerns where there is one (views attach the message to that field).
"""


class ProjectError(Exception):
    code = "project.error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class InvalidProjectName(ProjectError):
    code = "project.name.invalid"


class NotAllowed(ProjectError):
    code = "project.forbidden"
    status = 403


class NotFound(ProjectError):
    """An unknown project, release, file, user or invitation."""

    code = "project.not-found"
    status = 404


class Conflict(ProjectError):
    """The change contradicts the current state (the last Owner leaving, a second invitation)."""

    code = "project.conflict"
    status = 409


class ConfirmationMismatch(ProjectError):
    """A deletion's typed confirmation does not match what is deleted."""

    code = "project.confirmation-mismatch"
