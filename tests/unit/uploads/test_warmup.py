"""The warm-up's distributions must pass the validation: one that is refused would leave the
worker's first uploads cold again, with only a warning in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bastion.core.dists import validate_distribution
from bastion.uploads import warmup


@pytest.mark.parametrize("build", [warmup._wheel, warmup._sdist], ids=["wheel", "sdist"])
def test_the_warm_up_distributions_are_valid(build, tmp_path: Path) -> None:
    path = build(tmp_path)
    dist = validate_distribution(path, filename=path.name, new_project=True)
    assert dist.name == "bastion-warm-up"
    assert dist.metadata.description_content_type == "text/markdown"  # its renderer loaded


def test_the_warm_up_runs_clean_and_leaves_no_file(caplog, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with caplog.at_level(logging.DEBUG, logger="bastion.uploads.warmup"):
        warmup.warm_up(rounds=2)
    assert [r.levelname for r in caplog.records] == ["DEBUG"], caplog.text
    assert list(tmp_path.iterdir()) == []


def test_a_failing_warm_up_is_only_a_warning(caplog, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(warmup, "validate_distribution", refuse)
    with caplog.at_level(logging.WARNING, logger="bastion.uploads.warmup"):
        warmup.warm_up(rounds=1)
    assert "the upload warm-up failed" in caplog.text


def test_the_warm_up_loads_the_markdown_renderer_but_not_docutils() -> None:
    # A fresh worker's first Markdown description waited ~9 ms for the renderer to load;
    # reStructuredText's (docutils) is too large to load in every worker ahead of need.
    import subprocess
    import sys

    script = (
        "import sys; from bastion.uploads import warmup; warmup.warm_up(rounds=1); "
        "print('readme_renderer.markdown' in sys.modules, 'docutils' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
