"""CPython's own executor tests (``Lib/test/test_concurrent_futures``) run against ``ComputePool``.

The stdlib keeps its executor tests in mixins that expect ``self.executor`` (made by ``util.ExecutorMixin``
from ``executor_type(max_workers=worker_count)``). Here each mixin is combined with ``ComputePoolMixin``,
which makes a ``ComputePool(vms=2)`` instead and closes it after the test:

* ``ProcessPoolExecutorTest`` (it includes all of ``ExecutorTest``): submit, map, map errors and timeout,
  chunksize, no stale references, tracebacks;
* ``WaitTests`` and ``AsCompletedTests``: ``concurrent.futures.wait`` and ``as_completed`` on pool futures;
* ``ProcessPoolShutdownTest`` (it includes all of ``ExecutorShutdownTest``): shutdown, cancel_futures, exit.

A stdlib test that does not apply is taken out of the class; ``NOT_APPLICABLE`` says why. A few are
replaced by a copy adapted to the pool (its docstring says what changed and why). A test that fails
because of a bug in the pool would be a strict xfail naming the bug (the two found, the authkey and the
indices of a pool that closes itself after ``shutdown(wait=False)``, are fixed).

Not used: the ``ThreadPool*`` classes' own tests (they read ``_threads`` and thread names, or share a
closure over a ``threading.Event``, which cannot cross to a VM), and the package's other modules
(``test_deadlock``: ProcessPoolExecutor's BrokenProcessPool handling; ``test_init``: ``initializer=``,
where the pool has ``setup=`` source; ``test_future``: the Future class itself, not an executor).

The mixins come from the stdlib's ``test.test_concurrent_futures`` package, which not every Python has
(pyenv's 3.11 build here ships its test suite without it): where it is absent the module is skipped,
and it runs on 3.13.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import unittest
from typing import Any

import pytest
from vmtools import alive, wait_until

from runtime import ComputePool, RemoteTraceback, VMClosedError

_ABSENT = (
    "this Python has no test.test_concurrent_futures package (CPython's executor tests as mixins; "
    "pyenv's 3.11 build ships its test suite without it), so they cannot run here; they run on 3.13"
)
# Modules, never their classes, are bound here: pytest collects every TestCase class in this namespace.
wait_tests = pytest.importorskip("test.test_concurrent_futures.test_wait", reason=_ABSENT)
as_completed_tests = pytest.importorskip("test.test_concurrent_futures.test_as_completed", reason=_ABSENT)
shutdown_tests = pytest.importorskip("test.test_concurrent_futures.test_shutdown", reason=_ABSENT)
process_pool_tests = pytest.importorskip("test.test_concurrent_futures.test_process_pool", reason=_ABSENT)
cf_util = pytest.importorskip("test.test_concurrent_futures.util", reason=_ABSENT)
script_helper = pytest.importorskip("test.support.script_helper", reason=_ABSENT)
support = pytest.importorskip("test.support", reason=_ABSENT)

# The stdlib tests that do not apply to ComputePool, and why. Each is removed from the classes below.
NOT_APPLICABLE: dict[str, str] = {
    # ProcessPoolExecutorTest
    "test_max_workers_too_large": (
        "ProcessPoolExecutor's Windows limit (max_workers <= 61); the pool's limit, vms <= 15, is "
        "checked by the adapted test_max_workers_negative"
    ),
    "test_killed_child": (
        "a killed worker breaks a ProcessPoolExecutor for good (BrokenProcessPool), while issue #13 asks "
        "the opposite of the pool: a VM that dies fails only its own job (VMDiedError), is restarted and "
        "the pool carries on (tested in the pool's own tests); it also reads executor._processes"
    ),
    "test_saturation": (
        "reads ProcessPoolExecutor internals (_processes, _max_workers) and shares a multiprocessing "
        "Semaphore, which can only be inherited by multiprocessing children; a pool's VM set is fixed"
    ),
    "test_idle_process_reuse_one": (
        "counts ProcessPoolExecutor's lazily started workers (_processes); a pool owns a fixed set of VMs"
    ),
    "test_idle_process_reuse_multiple": (
        "counts ProcessPoolExecutor's lazily started workers (_processes); a pool owns a fixed set of VMs"
    ),
    "test_max_tasks_per_child": "ComputePool has no max_tasks_per_child option (nor _processes)",
    "test_max_tasks_per_child_defaults_to_spawn_context": (
        "ComputePool has no max_tasks_per_child option nor multiprocessing context"
    ),
    "test_max_tasks_early_shutdown": "ComputePool has no max_tasks_per_child option",
    "test_python_finalization_error": (
        "patches threading._start_joinable_thread to fail ProcessPoolExecutor's queue feeder thread and "
        "expects BrokenProcessPool: internals of ProcessPoolExecutor"
    ),
    # ProcessPoolShutdownTest / ExecutorShutdownTest
    "test_processes_terminate": (
        "reads executor._processes and shares a multiprocessing Semaphore (inheritance only); that the VM "
        "processes end is checked by the adapted test_context_manager_shutdown and test_shutdown_no_wait"
    ),
    "test_interpreter_shutdown": (
        "expects a job still running at interpreter exit to finish (stdlib executors join their workers "
        "at exit); issue #13 makes the pool end at exit as a ComputeThread does: its VMs are stopped at "
        "once and the job's output never comes (a game that quits must not wait for its queued chunks)"
    ),
}


def compute_pool(max_workers: int | None = None, **kwargs: Any) -> ComputePool:
    """``ComputePool`` called the way the stdlib tests call an executor type: ``max_workers`` is ``vms``."""
    return ComputePool(vms=max_workers, **kwargs)


class ComputePoolMixin(cf_util.ExecutorMixin):  # type: ignore[misc,name-defined]
    """The adapter: ``self.executor`` is a ``ComputePool`` of ``worker_count`` VMs, closed after the test."""

    executor_type = staticmethod(compute_pool)
    worker_count = 2  # the stdlib uses 5; this machine has 2 cores, and test_cancel_futures wants <= 5

    def tearDown(self) -> None:
        executor = self.executor
        try:
            super().tearDown()  # the stdlib's: shutdown(wait=True), then a check that it took < 300 s
        finally:
            if executor is not None:
                executor.close()  # even when shutdown failed: every test ends its VMs


def _without_inapplicable(cls: type) -> type:
    """Take the ``NOT_APPLICABLE`` tests out of ``cls`` (unittest collects only callable test_ names)."""
    for name in NOT_APPLICABLE:
        if callable(getattr(cls, name, None)) and name not in vars(cls):
            setattr(cls, name, None)
    return cls


# -- ExecutorTest (via ProcessPoolExecutorTest) --------------------------------------------------------


def _authkey() -> bytes:
    """In the VM: its multiprocessing authkey (the key Manager proxies and Listeners check)."""
    return bytes(multiprocessing.current_process().authkey)


class _MarksItsEnd:
    """The stdlib's ``EventfulGCObj`` without a Manager: when freed, it leaves a file named after the
    process that freed it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __del__(self) -> None:
        with open(os.path.join(self.folder, str(os.getpid())), "w"):
            pass


@_without_inapplicable
class ComputePoolExecutorTest(
    ComputePoolMixin, process_pool_tests.ProcessPoolExecutorTest, unittest.TestCase
):
    def test_max_workers_negative(self) -> None:
        """Adapted: the stdlib matches ProcessPoolExecutor's words ("max_workers must be greater than 0");
        the pool's parameter is ``vms``, and its message names that rule. 16 is over pocketpy's 15 VMs."""
        for number in (0, -1, 16):
            with self.assertRaisesRegex(ValueError, r"^vms must be an int in 1\.\.15 "):
                self.executor_type(max_workers=number)

    def test_traceback(self) -> None:
        """Adapted: the VM's traceback is a ``runtime.RemoteTraceback`` (its ``text``) where the stdlib
        has ``concurrent.futures.process._RemoteTraceback`` (its ``tb``); all else as in CPython."""
        future = self.executor.submit(self._test_traceback)
        with self.assertRaises(Exception) as cm:
            future.result()

        exc = cm.exception
        self.assertIs(type(exc), RuntimeError)
        self.assertEqual(exc.args, (123,))
        cause = exc.__cause__
        self.assertIs(type(cause), RemoteTraceback)
        assert isinstance(cause, RemoteTraceback)
        self.assertIn("raise RuntimeError(123) # some comment", cause.text)

        with support.captured_stderr() as f1:
            try:
                raise exc
            except RuntimeError:
                sys.excepthook(*sys.exc_info())
        self.assertIn("raise RuntimeError(123) # some comment", f1.getvalue())

    def test_ressources_gced_in_workers(self) -> None:
        """Adapted: CPython's sends an object whose ``__del__`` sets a ``multiprocessing.Manager`` Event.
        A Manager proxy does not work in a VM (see test_vm_has_vm0_multiprocessing_authkey), and a
        Manager server started here would leave a resource tracker process; so the object marks its
        end in a file named after the freeing process. Same claim: a job's arguments are freed in the
        VM once the job is done."""
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        obj = _MarksItsEnd(folder)
        future = self.executor.submit(id, obj)
        future.result()

        def freed_in_vm() -> bool:
            return bool(set(os.listdir(folder)) - {str(os.getpid())})

        self.assertTrue(wait_until(freed_in_vm, timeout=10.0), "the job's argument lives on in the VM")

        support.gc_collect()
        obj = None  # freed here too, before the folder goes
        support.gc_collect()
        self.assertIn(str(os.getpid()), os.listdir(folder))

    def test_vm_has_vm0_multiprocessing_authkey(self) -> None:
        """Not a CPython test: the condition its test_ressources_gced_in_workers relies on (a Manager
        proxy argument connects back from the worker), checked without starting a Manager."""
        self.assertEqual(self.executor.submit(_authkey).result(), _authkey())


# -- wait() and as_completed() -------------------------------------------------------------------------


class ComputePoolWaitTest(ComputePoolMixin, wait_tests.WaitTests, unittest.TestCase):
    pass


class ComputePoolAsCompletedTest(ComputePoolMixin, as_completed_tests.AsCompletedTests, unittest.TestCase):
    pass


# -- ExecutorShutdownTest (via ProcessPoolShutdownTest) ------------------------------------------------


def _vm_pids(executor: ComputePool, jobs: int) -> set[int]:
    """The process ids of the VMs that ran ``jobs`` small jobs (each job reports its VM's pid)."""
    return {future.result() for future in [executor.submit(os.getpid) for _ in range(jobs)]}


def _ended(pids: set[int]) -> bool:
    return not any(alive(pid) for pid in pids)


@_without_inapplicable
class ComputePoolShutdownTest(ComputePoolMixin, shutdown_tests.ProcessPoolShutdownTest, unittest.TestCase):
    def test_submit_after_interpreter_shutdown(self) -> None:
        """Adapted: the same script with a ``ComputePool``; its error is ``VMClosedError``, a
        ``RuntimeError`` (the script's ``except RuntimeError`` proves it), so stderr names that class."""
        _rc, out, err = script_helper.assert_python_ok(
            "-c",
            "if 1:\n"
            "    import atexit\n"
            "    @atexit.register\n"
            "    def run_last():\n"
            "        try:\n"
            "            t.submit(id, None)\n"
            "        except RuntimeError:\n"
            "            print('runtime-error')\n"
            "            raise\n"
            "    from runtime import ComputePool\n"
            "    if __name__ == '__main__':\n"
            "        t = ComputePool(vms=2)\n"
            "        t.submit(id, 42).result()\n",
        )
        self.assertIn("VMClosedError: cannot schedule new futures", err.decode())
        self.assertEqual(out.strip(), b"runtime-error")

    def test_hang_gh83386(self) -> None:
        """Adapted: ``shutdown(wait=False)`` with a job running does not hang the interpreter's exit (it
        exits cleanly, well before the job would end). Unlike CPython's, the job's "apple" is not
        expected: at exit the pool stops its VMs (see test_interpreter_shutdown in NOT_APPLICABLE)."""
        started = time.monotonic()
        _rc, _out, err = script_helper.assert_python_ok(
            "-c",
            "if True:\n"
            "    import time\n"
            "    from runtime import ComputePool\n"
            "    if __name__ == '__main__':\n"
            "        t = ComputePool(vms=3)\n"
            "        t.submit(time.sleep, 60.0)\n"
            "        t.shutdown(wait=False)\n",
        )
        self.assertFalse(err)
        self.assertLess(time.monotonic() - started, 30.0)

    def test_context_manager_shutdown(self) -> None:
        """Adapted: CPython's builds a ``ProcessPoolExecutor`` itself and joins ``e._processes``; here a
        ``ComputePool`` in ``with``, and the VM processes that ran its jobs are gone after the block."""
        with compute_pool(max_workers=self.worker_count) as e:
            pids = _vm_pids(e, 8)
            self.assertEqual(list(e.map(abs, range(-5, 5))), [5, 4, 3, 2, 1, 0, 1, 2, 3, 4])
        self.assertTrue(e.closed)
        self.assertTrue(wait_until(lambda: _ended(pids), timeout=10.0), f"VM processes left: {pids}")

    def test_del_shutdown(self) -> None:
        """Adapted, and the contract differs: after ``del executor`` CPython's test expects the pending
        map to finish. Issue #13 makes a collected pool close as a ComputeThread does, so its queued
        and running jobs end at once with ``VMClosedError`` (rather than finishing or hanging), and its
        VM processes end."""
        executor = compute_pool(max_workers=self.worker_count)
        pids = _vm_pids(executor, 8)
        res = executor.map(time.sleep, [0.2] * 10)
        del executor
        support.gc_collect()

        started = time.monotonic()
        with self.assertRaises(VMClosedError):
            list(res)
        self.assertLess(time.monotonic() - started, 10.0)
        self.assertTrue(wait_until(lambda: _ended(pids), timeout=10.0), f"VM processes left: {pids}")

    def test_shutdown_no_wait(self) -> None:
        """Adapted: CPython's joins ``_executor_manager_thread`` and ``_processes``; here the pool
        closes itself once the work is done, its VM processes end and its VM indices are free again."""
        executor = compute_pool(max_workers=self.worker_count)
        try:
            pids = _vm_pids(executor, 8)
            res = executor.map(abs, range(-5, 5))
            executor.shutdown(wait=False)

            self.assertTrue(wait_until(lambda: executor.closed, timeout=10.0), "the pool did not close")
            self.assertTrue(wait_until(lambda: _ended(pids), timeout=10.0), f"VM processes left: {pids}")
            # The results were all computed before the pool closed.
            self.assertEqual(list(res), [abs(v) for v in range(-5, 5)])
            again = ComputePool(vms=executor.vm_indices)  # its VM indices are free again
            again.close()
        finally:
            executor.close()


# -- the exclusions themselves --------------------------------------------------------------------------

_STDLIB_MIXINS = (
    process_pool_tests.ProcessPoolExecutorTest,
    wait_tests.WaitTests,
    as_completed_tests.AsCompletedTests,
    shutdown_tests.ProcessPoolShutdownTest,
)
_OURS = (ComputePoolExecutorTest, ComputePoolWaitTest, ComputePoolAsCompletedTest, ComputePoolShutdownTest)


def test_every_exclusion_names_a_stdlib_test_and_is_not_collected() -> None:
    """``NOT_APPLICABLE`` holds only real stdlib tests (no stale or misspelt name hides a test), and
    each is gone from our classes, while every other stdlib test is run (as is or adapted)."""
    loader = unittest.TestLoader()
    stdlib = {name for mixin in _STDLIB_MIXINS for name in dir(mixin) if name.startswith("test")}
    ours = {name for cls in _OURS for name in loader.getTestCaseNames(cls)}
    assert set(NOT_APPLICABLE) <= stdlib
    assert not set(NOT_APPLICABLE) & ours
    assert stdlib - set(NOT_APPLICABLE) <= ours
