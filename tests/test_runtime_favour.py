"""favour_this_thread: a short scheduler slice for the calling thread only, nothing else changed."""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import threading
from collections.abc import Iterator

import pytest
from vmtools import run_python

import runtime

ATTR = struct.Struct("IIQiIQQQII")  # struct sched_attr: size, policy, flags, nice, priority, runtime, ...
GETATTR = {"x86_64": 315, "aarch64": 275, "riscv64": 275}.get(platform.machine())


def kernel_has_custom_slices() -> bool:
    """Linux 6.12 added fair tasks' custom slices (sched_attr.sched_runtime)."""
    if platform.system() != "Linux" or GETATTR is None:
        return False
    major, minor = (int(part) for part in platform.release().split(".")[:2])
    return (major, minor) >= (6, 12)


def attr_of_this_thread() -> tuple[int, ...]:
    assert GETATTR is not None
    buffer = ctypes.create_string_buffer(ATTR.size)
    assert ctypes.CDLL(None).syscall(GETATTR, 0, buffer, ATTR.size, 0) == 0
    return ATTR.unpack(buffer.raw)


def slice_ns() -> int:
    return attr_of_this_thread()[5]


@pytest.fixture
def default_slice() -> Iterator[int]:
    """This thread's slice before the test, given back after it."""
    if not kernel_has_custom_slices():
        yield 0
        return
    before = slice_ns()
    yield before
    runtime.favour_this_thread(None)
    assert slice_ns() == before


def test_the_thread_gets_the_slice_asked_for_and_gets_the_default_back(default_slice: int) -> None:
    if not kernel_has_custom_slices():
        # Elsewhere it says so and changes nothing (this machine's kernel has them: CI checks the rest).
        assert runtime.favour_this_thread() is False
        return
    assert default_slice > 200_000  # the kernel's default: ~0.7-3 ms
    assert runtime.favour_this_thread() is True
    assert slice_ns() == 200_000  # 0.2 ms, the default asked for
    assert runtime.favour_this_thread(1.5) is True and slice_ns() == 1_500_000
    assert runtime.favour_this_thread(None) is True
    assert slice_ns() == default_slice


def test_only_the_calling_thread_changes(default_slice: int) -> None:
    if not kernel_has_custom_slices():
        pytest.fail("this test needs Linux 6.12+ (custom slices)")
    other: list[int] = []
    ready, done = threading.Event(), threading.Event()

    def worker() -> None:
        ready.set()
        assert done.wait(10)
        other.append(slice_ns())

    thread = threading.Thread(target=worker)
    thread.start()
    assert ready.wait(10)
    assert runtime.favour_this_thread(0.5) is True
    done.set()
    thread.join(10)
    assert slice_ns() == 500_000 and other == [default_slice]


def test_the_policy_and_nice_value_stay() -> None:
    if not kernel_has_custom_slices():
        pytest.fail("this test needs Linux 6.12+ (custom slices)")
    # In a fresh process: a nice value can be raised but never lowered back without privileges.
    code = (
        "import os, sys\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "from test_runtime_favour import attr_of_this_thread\n"
        "import runtime\n"
        "os.nice(5)\n"
        "before = attr_of_this_thread()\n"
        "assert runtime.favour_this_thread(0.3) is True\n"
        "after = attr_of_this_thread()\n"
        "print(before[1], before[3], after[1], after[3], after[5])\n"
    )
    out = run_python(code).stdout.split()
    assert out == ["0", "5", "0", "5", "300000"]  # SCHED_OTHER and nice 5 before and after; 0.3 ms


@pytest.mark.parametrize("bad", [0, 0.05, 100.5, -1, "fast", True, float("nan")])
def test_a_slice_out_of_range_is_refused_and_changes_nothing(bad: object, default_slice: int) -> None:
    with pytest.raises(ValueError, match=r"^slice_ms must be a number in 0\.1\.\.100 or None, got "):
        runtime.favour_this_thread(bad)  # type: ignore[arg-type]
    if kernel_has_custom_slices():
        assert slice_ns() == default_slice
