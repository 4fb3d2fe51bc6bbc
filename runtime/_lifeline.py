"""Die with the parent: ask Linux to SIGKILL this process when its parent dies.

Used by a VM forked from the template (it dies with the template) and by a spawned VM (it dies with
VM 0). The kernel sends the signal even while a job holds the GIL, which no watcher thread could do.
Elsewhere it does nothing, and the worker's parent-watch thread remains the fallback.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
_loaded = False


def prepare() -> None:
    """Load ``prctl`` now (the template does, once, so that each forked VM need not import ctypes)."""
    global _prctl, _loaded
    if _loaded:
        return
    _loaded = True
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a no-op where that cannot be asked).

    Linux means the parent *thread*: call it in a process started by a thread that lives as long as
    the parent process does.
    """
    prepare()
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
