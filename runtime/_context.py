"""Which VM this code runs in, and progress reporting from inside a job.

VM 0 (the main program) never changes this module's state, so ``currentvm()`` returns 0 and
``report_progress()`` does nothing there. A worker VM calls ``_enter_vm()`` once at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, SupportsFloat, cast

_vm_index = 0
MAX_MESSAGE = 1000  # characters of a progress message that reach VM 0

# The latest fraction and message a job reported, in two list slots (fraction None: nothing reported
# in this job yet). A publisher thread in the worker reads them and sends them to VM 0 at a bounded
# rate, so a report costs two list stores: "the latest value wins". Two slots rather than one tuple,
# because storing into a list allocates nothing, and that is a sixth of the call. Only the job writes
# here and the publisher only reads (it remembers what it sent), so no report is lost between a read
# and a reset; a read between the two stores pairs the new fraction with the previous message, which
# the next round, or the job's end, replaces with the pair as reported.
_latest: list[Any] = [None, ""]
# Called on the first report in this VM (it starts the publisher thread), then cleared: a VM whose jobs
# never report progress runs no extra thread, and a round trip never wakes one.
_on_first_report: Callable[[], None] | None = None


def currentvm() -> int:
    """Return the index of the VM the caller runs in: 0 in the main program, *i* inside VM *i*."""
    return _vm_index


def report_progress(fraction: float, message: str = "") -> None:
    """Report how far the running job has come, for VM 0 to read as ``ComputeThread.progress``.

    ``fraction`` is a number in 0..1 and ``message`` a short text such as the stage name. Calls are
    coalesced (VM 0 sees the latest value, at most about 60 times a second), so calling this in a tight
    loop costs about as much as a function call. VM 0 sees at most the first 1,000 characters of the
    message. In VM 0 it checks its arguments and does nothing else.
    """
    # The common case first, in as few steps as possible: this may run millions of times per job.
    # In VM 0 nothing reads the slots, so storing there too spares every call a test.
    if fraction.__class__ is float and fraction >= 0.0 and fraction <= 1.0 and message.__class__ is str:
        _latest[0] = fraction  # (NaN fails both comparisons)
        _latest[1] = message
        if _on_first_report is None:
            return
        _start_publisher()
        return
    _report_other(fraction, message)


def _report_other(fraction: object, message: object) -> None:
    """``report_progress`` for any other arguments: check them, then report the fraction as a float.

    Any real number in 0..1 will do (an int, a numpy float, a Fraction, a Decimal); anything else, an
    array included, raises the error that names the rule it broke. Only floats reach the publisher.
    """
    import numbers

    # Decimal is a Number but not registered as Real; complex numbers are the Numbers to refuse.
    real = isinstance(fraction, numbers.Real) or (
        isinstance(fraction, numbers.Number) and not isinstance(fraction, numbers.Complex)
    )
    if not real:
        raise TypeError(f"fraction must be a number in 0..1, got {type(fraction).__name__}")
    try:
        value = float(cast(SupportsFloat, fraction))
    except OverflowError:
        value = math.inf
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fraction must be a number in 0..1, got {fraction!r}")
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, got {type(message).__name__}")
    report_progress(value, str(message))


def _enter_vm(vm_index: int, on_first_report: Callable[[], None]) -> None:
    """Mark this process as worker VM ``vm_index`` (called once by the worker entry point)."""
    global _vm_index, _on_first_report
    _vm_index = vm_index
    _on_first_report = on_first_report


def _start_publisher() -> None:
    global _on_first_report
    start, _on_first_report = _on_first_report, None
    if start is not None:
        start()


def _forget_latest() -> None:
    """Forget the previous job's report (called before a job starts, while nothing else writes)."""
    _latest[0] = None


def _read_latest() -> tuple[float, str] | None:
    """Return the latest report of the running job, or None if it has reported nothing yet."""
    fraction, text = _latest
    if fraction is None:
        return None
    # The text is for a status line: a huge one must not flood the channel.
    return fraction, text[:MAX_MESSAGE]
