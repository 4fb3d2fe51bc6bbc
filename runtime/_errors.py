"""The errors ``runtime`` raises, and the remote traceback carried as ``__cause__``.

Two situations look alike but need different handling, so they have different classes (as trio's
ClosedResourceError and BrokenResourceError do): *you* closed the ComputeThread (``VMClosedError``),
or the VM broke under a job (``VMDiedError``). ``JobCancelledError`` is the outcome of ``cancel()``.
All subclass ``ComputeThreadError``, a ``RuntimeError``, so pocketpy-style ``except RuntimeError`` code
keeps working.
"""

from __future__ import annotations


class ComputeThreadError(RuntimeError):
    """Base class of the errors raised by ``runtime`` itself (not by your job)."""


class VMDiedError(ComputeThreadError):
    """The VM process died during the job (it crashed, called ``exit()`` or was killed).

    It is not your doing in VM 0: the job is lost, and the next job starts a fresh VM whose
    ``__main__`` namespace is empty again (the ComputeThread's ``setup`` source runs there first).
    """


class VMClosedError(ComputeThreadError):
    """You closed it: the ComputeThread or ComputePool (``close()``, the end of a ``with`` block, garbage
    collection, interpreter exit), or shut the pool down (``shutdown()``).

    Jobs still queued or running when it was closed end with this error; a closed ComputeThread or a
    pool that was shut down accepts no new jobs.
    """


class JobCancelledError(ComputeThreadError):
    """You cancelled the job: ``ComputeThread.cancel()`` stopped it (its VM was killed and will be
    replaced), or ``ComputePool.cancel(key, running=True)`` stopped it running (the same) or before it
    started (its VM skipped it; nothing was replaced)."""


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised inside a VM.

    ``Future.result()`` and ``ComputeThread.call()`` re-raise the VM's exception with this attached as
    ``__cause__``, so the traceback printed in VM 0 shows where the job failed in the VM.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class JobError(ComputeThreadError):
    """A job failed in the VM; the message holds the VM's formatted traceback.

    ``exec()`` and ``eval()`` raise it for any failure of their source (pocketpy raises a
    ``RuntimeError`` there), and ``Future.result()``/``call()`` raise it in place of an exception
    whose class cannot be pickled.
    """
