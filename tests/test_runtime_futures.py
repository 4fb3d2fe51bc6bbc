"""Futures: a FIFO queue per VM, remote exceptions with their type, cancel, asyncio, and call()."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmtools import NOT_DONE, ROOT, wait_until

from runtime import ComputeThread, JobError, RemoteTraceback

SETUP = """
import time
class GameError(Exception):
    pass
log = []
def step(i, delay=0.0):
    time.sleep(delay)
    log.append(i)
    return list(log)
def fail(message):
    raise GameError(message)
def fail_unpicklable():
    import threading
    e = ValueError("carries a lock")
    e.lock = threading.Lock()
    raise e
"""


@pytest.fixture
def vm() -> Iterator[ComputeThread]:
    with ComputeThread(1, setup=SETUP) as thread:
        yield thread


def test_submit_returns_futures_that_run_in_fifo_order(vm: ComputeThread) -> None:
    futures = [vm.submit("step", i, delay=0.02) for i in range(5)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futures)
    assert futures[-1].result(10) == [0, 1, 2, 3, 4]
    assert [f.result(0) for f in futures][2] == [0, 1, 2]


def test_futures_resolve_without_anyone_polling(vm: ComputeThread) -> None:
    future = vm.submit("step", 1, delay=0.1)
    done = concurrent.futures.wait([future], timeout=10)
    assert future in done.done
    assert future.result() == [1]


def test_result_reraises_the_vm_exception_with_its_type_and_traceback(vm: ComputeThread) -> None:
    future = vm.submit("fail", "the bridge collapsed")
    with pytest.raises(Exception, match="^the bridge collapsed$") as caught:
        future.result(10)
    assert type(caught.value).__name__ == "GameError"  # a class defined in the VM's __main__
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail" in str(cause) and "raise GameError(message)" in str(cause)
    with pytest.raises(ZeroDivisionError):
        vm.submit("lambda: 1 / 0").result(10)


def test_a_function_sent_from_the_main_script_fails_with_its_file_and_source_line(tmp_path: Path) -> None:
    # Functions of the main script travel by value (cloudpickle), which names their code
    # "<dynamic-code>": the VM's traceback must name the script and show the line, as a local one would.
    script = tmp_path / "mygame.py"
    script.write_text(
        "from runtime import ComputeThread\n"
        "def boom(x):\n"
        "    y = x + 1\n"
        "    raise ValueError(f'bad {y}')\n"
        "with ComputeThread(1) as t:\n"
        "    t.submit_call(boom, 1)\n"
        "    t.wait_for_done(30)\n"
        "    print(t.last_error())\n"
        "    try:\n"
        "        t.submit(boom, 2).result(30)\n"
        "    except ValueError as e:\n"
        "        print(e.__cause__)\n"
    )
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    where = f"File \"{script}\", line 4, in boom\n    raise ValueError(f'bad {{y}}')"
    assert done.stdout.count(where) == 2, done.stdout
    assert "<dynamic-code>" not in done.stdout


def test_an_exception_that_cannot_be_pickled_becomes_a_job_error(vm: ComputeThread) -> None:
    with pytest.raises(JobError, match="ValueError: carries a lock") as caught:
        vm.call("fail_unpicklable")
    assert isinstance(caught.value.__cause__, RemoteTraceback)


def test_future_cancel_works_while_the_job_waits(vm: ComputeThread) -> None:
    first = vm.submit("step", "a", delay=0.3)
    second = vm.submit("step", "b")
    third = vm.submit("step", "c")
    assert second.cancel() is True
    assert third.result(10) == ["a", "c"]
    assert first.result(0) == ["a"]
    assert second.cancelled()


def test_asyncio_wrap_future_works(vm: ComputeThread) -> None:
    async def main() -> list[object]:
        return await asyncio.wrap_future(vm.submit("step", "async", delay=0.05))

    assert asyncio.run(main()) == ["async"]


def test_call_blocks_and_returns_or_raises(vm: ComputeThread) -> None:
    assert vm.call("step", 9) == [9]
    assert vm.call(divmod, 17, 5) == (3, 2)
    with pytest.raises(Exception, match="^nope$"):
        vm.call("fail", "nope")


def test_pocketpy_calls_and_futures_share_one_queue(vm: ComputeThread) -> None:
    vm.submit_eval("'slot value'")
    future = vm.submit("step", "queued", delay=0.3)
    assert not vm.is_done  # a future is pending
    with pytest.raises(OSError, match=NOT_DONE):
        vm.submit_call("step", 1)
    with pytest.raises(OSError, match=NOT_DONE):
        vm.last_retval()
    assert vm.wait_for_done(10)
    assert future.result(0) == ["queued"]
    assert vm.last_retval() == "slot value"  # futures never touch last_retval / last_error
    assert vm.last_error() is None


def test_queued_jobs_survive_a_crash_of_the_running_one(vm: ComputeThread) -> None:
    crash = vm.submit("__import__('os')._exit", 2)
    after = vm.submit("step", "fresh")
    with pytest.raises(Exception, match="exited with code 2"):
        crash.result(10)
    assert after.result(10) == ["fresh"]  # ran in a fresh VM, with the setup run again


def test_is_done_is_cheap_and_does_not_block(vm: ComputeThread) -> None:
    vm.submit_call("step", 0, delay=0.5)
    started = time.perf_counter()
    for _ in range(1000):
        assert vm.is_done is False
    assert time.perf_counter() - started < 0.5  # well under the job's length: no call blocked
    assert wait_until(lambda: vm.is_done, timeout=10)
