"""Who owns which VM index (1..15) in this VM 0: the only code that reads or changes that.

A ``ComputeThread`` owns one index, a ``ComputePool`` several; what the registry holds is their
manager, never the public object, so that garbage collection can still collect the public object and
close what it owned. Also here: closing everything (``close_all``, at interpreter exit too), the close
of a collected owner (handed to the reaper thread) and the reset of a child that the game forked from
VM 0 (it owns no VM).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from . import _launcher, _payload
from ._reaper import REAPER

MAX_VM_INDEX = 15


class Owner(Protocol):
    """What owns VM indices: it can be closed, and forgotten in a forked child."""

    def close(self) -> None: ...

    def forget(self) -> None: ...


_lock = threading.RLock()
_owners: dict[int, Owner] = {}
_what: dict[Owner, str] = {}  # what each owner is, for the message a second claim gets


def claim(indices: Iterable[int], owner: Owner, what: str) -> None:
    """Make ``owner`` the owner of every index in ``indices``, or of none (``ValueError`` naming the first
    index already owned, in pocketpy's words: ``vm_index 3 is already in use``)."""
    wanted = list(indices)
    with _lock:
        for index in wanted:
            if index in _owners:
                holder = _what.get(_owners[index], "ComputeThread")
                raise ValueError(f"vm_index {index} is already in use by a live {holder}")
        for index in wanted:
            _owners[index] = owner
        _what[owner] = what
        _payload.POOL.retain = True


def release(owner: Owner) -> None:
    """Free every index ``owner`` holds."""
    with _lock:
        for index in [index for index, held in _owners.items() if held is owner]:
            del _owners[index]
        _what.pop(owner, None)
        _payload.POOL.retain = bool(_owners)  # no VM left to send big values to: keep no segment


def free_indices() -> list[int]:
    """The indices nobody owns, lowest first."""
    with _lock:
        return [index for index in range(1, MAX_VM_INDEX + 1) if index not in _owners]


def owned() -> list[int]:
    """The indices that are owned, lowest first."""
    with _lock:
        return sorted(_owners)


def collected(owner: Owner, close: Callable[[], object]) -> None:
    """The public object of ``owner`` was garbage collected: free its indices now, ``close`` soon.

    Runs wherever the collector ran. Freeing the indices is plain dict operations (no lock: the collector
    may have struck while this thread held one), so they can be owned again at once; the close itself
    runs in the reaper thread.
    """
    for index, held in list(_owners.items()):
        if held is owner:
            _owners.pop(index, None)
    _what.pop(owner, None)
    REAPER.call_soon(close)


def close_all() -> None:
    """Close everything that owns a VM (``runtime.shutdown()``, and at interpreter exit)."""
    with _lock:
        owners = list(dict.fromkeys(_owners.values()))
    for owner in owners:
        release(owner)
        owner.close()


def _at_exit() -> None:
    """At interpreter exit: close everything, then stop the template. (It would end with VM 0 anyway, but
    its process object and socket would be collected while it still runs: a ResourceWarning each.)"""
    close_all()
    _launcher.LAUNCHER.shutdown()


atexit.register(_at_exit)


def _forget_after_fork() -> None:
    """In a child that the game forked from VM 0: the VMs, the template and the segments are the
    parent's. The child owns no VM (its ComputeThreads and pools read as closed) and must not touch
    theirs. Futures that were pending at the fork belong to the parent too: in the child they never
    resolve (resolving them could deadlock on a lock another thread held at the fork).
    """
    global _lock
    _lock = threading.RLock()  # another thread may have held it at the fork
    for owner in dict.fromkeys(_owners.values()):
        owner.forget()
    _owners.clear()
    _what.clear()
    _launcher.forget_after_fork()
    _payload.POOL.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
