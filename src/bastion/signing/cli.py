"""``bastion tuf ...``: the signed-metadata commands (registered by ``bastion.cli``)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``tuf`` command and its actions to the ``bastion`` parser."""
