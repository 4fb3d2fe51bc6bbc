"""Shared test set-up: headless SDL before anything can import pygame, and VM hygiene checks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Set before pygame is imported anywhere, so that no test needs a display or a sound card.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


@pytest.fixture(autouse=True)
def _every_vm_is_closed() -> Iterator[None]:
    """A test that starts a VM must end it: fail the test that leaves a ComputeThread or pool open."""
    yield
    from runtime import _registry

    left = _registry.owned()
    if left:
        _registry.close_all()
        pytest.fail(f"the test left VM indices {left} owned (a ComputeThread or pool not closed)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the suite, stop the template and check that no child process is left behind."""
    from vmtools import children_of, wait_until

    import runtime

    runtime.shutdown()
    if not wait_until(lambda: not children_of(os.getpid()), timeout=5.0):
        left = children_of(os.getpid())
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nchild processes left after the test suite: {left}")
