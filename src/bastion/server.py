"""Run bastion under gunicorn (threaded workers), never Django's development server.

gunicorn writes the status line exactly as the application gives it, so upload errors keep
their one-line reason phrase, which twine shows (P73).
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from bastion.wsgi import application

        return application


def run(*, host: str, port: int, workers: int) -> None:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    _Server(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": 4,
            "timeout": 300,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "bastion",
            "preload_app": False,
            "limit_request_line": 8190,
        }
    ).run()
