"""Let the thread that runs the game's frames take a core from a busy VM the moment it wakes up.

A frame loop sleeps until its next frame. When it wakes, both cores may be running VMs: Linux's EEVDF
scheduler (6.6 and later) then lets the VM finish its time slice before the frame runs, whatever their
nice values, and the kernel checks that only at its next tick: up to ~4 ms late, a 21 ms frame. A task
asking for a *shorter* slice than the one running may preempt it at once (Linux 6.12's custom slices,
``sched_attr.sched_runtime``). Python has no ``os.sched_setattr``, so this makes the system call itself.
It changes only the calling thread, and only its slice: its policy, nice value and CPU share stay.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

# sched_setattr / sched_getattr system call numbers (other architectures: not supported, no change).
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275), "riscv64": (274, 275)}
# struct sched_attr, version 1 (56 bytes): size, policy, flags, nice, priority, runtime, deadline,
# period, util_min, util_max.
_ATTR = struct.Struct("IIQiIQQQII")
_RUNTIME = 5  # the field that is a fair task's slice, in ns
SLICE_MS = 0.2  # the kernel accepts 0.1..100 ms; its default is ~0.7-3 ms, depending on the core count
_MIN_MS, _MAX_MS = 0.1, 100.0


def favour_this_thread(slice_ms: float | None = SLICE_MS) -> bool:
    """Ask Linux for a short scheduler slice for the calling thread (``slice_ms``; ``None``: back to
    the kernel's default), so that when it wakes up it preempts a busy VM at once instead of at the
    kernel's next tick. Call it from the thread that runs the frames. Returns whether the kernel took
    it (False on other systems and on kernels before 6.12, where nothing changes)."""
    if slice_ms is not None and (
        isinstance(slice_ms, bool)
        or not isinstance(slice_ms, int | float)
        or not _MIN_MS <= slice_ms <= _MAX_MS
    ):
        raise ValueError(f"slice_ms must be a number in {_MIN_MS}..{_MAX_MS:g} or None, got {slice_ms!r}")
    calls = _SYSCALLS.get(platform.machine()) if os.name == "posix" else None
    if calls is None:
        return False
    setattr_nr, getattr_nr = calls
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    wanted = 0 if slice_ms is None else round(slice_ms * 1e6)
    buffer = ctypes.create_string_buffer(_ATTR.size)
    if libc.syscall(getattr_nr, 0, buffer, _ATTR.size, 0) != 0:
        return False
    fields = list(_ATTR.unpack(buffer.raw))
    if fields[1] not in (os.SCHED_OTHER, getattr(os, "SCHED_BATCH", -1)):
        return False  # a real-time or idle thread: slices do not apply
    fields[0] = _ATTR.size
    fields[2] = 0  # flags: none (the policy and nice value are passed back as they are)
    fields[_RUNTIME] = wanted
    if libc.syscall(setattr_nr, 0, ctypes.create_string_buffer(_ATTR.pack(*fields)), 0) != 0:
        return False
    if libc.syscall(getattr_nr, 0, buffer, _ATTR.size, 0) != 0:
        return False
    # Kernels before 6.12 accept the call and ignore the slice: then it reads back as 0.
    taken = _ATTR.unpack(buffer.raw)[_RUNTIME]
    return taken == wanted if wanted else True
