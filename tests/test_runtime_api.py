"""pocketpy parity: ComputeThread's calls, their exact errors, and the seed's main.py flow."""

from __future__ import annotations

import decimal
import gc
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from vmtools import NO_RETVAL, NOT_DONE, ROOT, alive, run_python, wait_until

import runtime
from runtime import ComputeThread, currentvm


@pytest.fixture
def vm() -> Iterator[ComputeThread]:
    with ComputeThread(1) as thread:
        yield thread


# -- vm_index -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 16, -1, 100])
def test_vm_index_out_of_range_is_a_value_error_naming_value_and_range(index: int) -> None:
    with pytest.raises(
        ValueError, match=rf"^vm_index {index} is out of range: it must be an int in 1\.\.15$"
    ):
        ComputeThread(index)


@pytest.mark.parametrize(
    ("index", "kind"), [("1", "str"), (1.0, "float"), (True, "bool"), (None, "NoneType")]
)
def test_vm_index_of_wrong_type_is_a_type_error(index: object, kind: str) -> None:
    with pytest.raises(TypeError, match=rf"^vm_index must be an int in 1\.\.15, got {kind}$"):
        ComputeThread(index)  # type: ignore[arg-type]


def test_vm_index_in_use_until_closed_or_collected() -> None:
    first = ComputeThread(3)
    with pytest.raises(ValueError, match=r"^vm_index 3 is already in use"):
        ComputeThread(3)
    first.close()
    second = ComputeThread(3)
    pid = second.pid
    assert pid is not None
    del second
    gc.collect()
    third = ComputeThread(3)  # the collected one freed the index
    third.close()
    assert wait_until(lambda: not alive(pid), timeout=2.0)
    for _ in range(20):  # at once, every time: the index is freed when the object goes
        assert ComputeThread(3).eval("1 + 1") == 2


def test_setup_must_be_source_that_compiles() -> None:
    with pytest.raises(TypeError, match="^setup must be a str, got int$"):
        ComputeThread(1, setup=3)  # type: ignore[arg-type]
    with pytest.raises(SyntaxError):
        ComputeThread(1, setup="def (:")
    ComputeThread(1).close()  # nothing was started, the index is free


# -- exec / eval ------------------------------------------------------------------------------------------


def test_exec_and_eval_share_a_persistent_main_namespace(vm: ComputeThread) -> None:
    assert vm.exec("x = 123\ndef double(v):\n    return 2 * v") is None
    assert vm.eval("x") == 123
    assert vm.eval("double(x)") == 246
    assert vm.eval("__name__") == "__main__"


def test_exec_failure_raises_runtime_error_with_the_vm_traceback(vm: ComputeThread) -> None:
    with pytest.raises(RuntimeError) as caught:
        vm.exec("a = 1\nb = a / 0\n")
    text = str(caught.value)
    assert "Traceback (most recent call last)" in text
    assert "ZeroDivisionError: division by zero" in text
    assert "line 2" in text and "b = a / 0" in text  # the failing line, number and source
    assert "_worker.py" not in text  # the runtime's own frames are left out


def test_eval_syntax_error_is_reported(vm: ComputeThread) -> None:
    with pytest.raises(RuntimeError, match="SyntaxError"):
        vm.eval("1 +")


def test_exec_and_eval_leave_last_error_and_last_retval_alone(vm: ComputeThread) -> None:
    vm.submit_eval("40 + 2")
    assert vm.wait_for_done(10)
    vm.exec("y = 1")
    with pytest.raises(RuntimeError):
        vm.eval("undefined_name")
    assert vm.last_retval() == 42
    assert vm.last_error() is None


@pytest.mark.parametrize("call", ["exec", "eval", "submit_exec", "submit_eval"])
def test_source_must_be_a_str(vm: ComputeThread, call: str) -> None:
    with pytest.raises(TypeError, match="^source must be a str, got bytes$"):
        getattr(vm, call)(b"1")
    assert vm.eval("1") == 1


# -- submit_* / is_done / last_* -------------------------------------------------------------------------


def test_submit_call_returns_at_once_and_keyword_arguments_work(vm: ComputeThread) -> None:
    vm.exec("import time\ndef job(a, b=0, *, scale=1):\n    time.sleep(0.3)\n    return (a + b) * scale")
    started = time.monotonic()
    vm.submit_call("job", 1, b=2, scale=10)
    assert time.monotonic() - started < 0.25
    assert vm.is_done is False
    assert vm.wait_for_done(10) is True
    assert vm.is_done is True
    assert vm.last_error() is None
    assert vm.last_retval() == 30


def test_submit_exec_and_submit_eval(vm: ComputeThread) -> None:
    vm.submit_exec("z = [1, 2, 3]")
    vm.wait_for_done(10)
    assert vm.last_error() is None
    assert vm.last_retval() is None
    vm.submit_eval("sum(z)")
    vm.wait_for_done(10)
    assert vm.last_retval() == 6


def test_last_retval_before_any_job_and_after_a_failure(vm: ComputeThread) -> None:
    with pytest.raises(ValueError, match=NO_RETVAL) as caught:
        vm.last_retval()
    assert caught.value.__notes__ == ["runtime: no submit_* job has run yet"]
    assert vm.last_error() is None
    vm.submit_call("int", "not a number")
    vm.wait_for_done(10)
    error = vm.last_error()
    assert isinstance(error, str)
    assert "ValueError: invalid literal for int() with base 10: 'not a number'" in error
    with pytest.raises(ValueError, match=NO_RETVAL) as caught:
        vm.last_retval()
    assert caught.value.__notes__ == ["runtime: the last job failed; last_error() has its traceback"]


def test_last_retval_is_the_same_object_each_call(vm: ComputeThread) -> None:
    vm.submit_eval("{'a': [1, 2]}")
    vm.wait_for_done(10)
    assert vm.last_retval() is vm.last_retval()


def test_busy_thread_raises_os_error_and_changes_nothing(vm: ComputeThread) -> None:
    vm.submit_eval("7 * 6")
    vm.wait_for_done(10)
    vm.exec("import threading\ngate = threading.Event()")
    vm.submit_call("lambda: gate.wait(0.6) or 'first'")
    calls = {
        "submit_exec": lambda: vm.submit_exec("x = 1"),
        "submit_eval": lambda: vm.submit_eval("1"),
        "submit_call": lambda: vm.submit_call("print", 1),
        "exec": lambda: vm.exec("x = 1"),
        "eval": lambda: vm.eval("1"),
        "last_error": vm.last_error,
        "last_retval": vm.last_retval,
    }
    for name, call in calls.items():
        with pytest.raises(OSError, match=NOT_DONE) as caught:
            call()
        assert str(caught.value) == "thread is not done yet"  # pocketpy's message, exactly
        assert caught.value.__notes__ == [
            "runtime: ComputeThread(1) has a job running or queued (futures count too); "
            "poll is_done or call wait_for_done() first"
        ]
        assert not vm.is_done, name
    assert vm.wait_for_done(10)
    assert vm.last_retval() == "first"
    with pytest.raises(RuntimeError, match="NameError"):
        vm.eval("x")  # nothing of the refused calls ran


def test_wait_for_done_times_out_and_sleeps_instead_of_spinning(vm: ComputeThread) -> None:
    vm.submit_call("__import__('time').sleep", 1.5)
    cpu = time.process_time()
    wall = time.monotonic()
    assert vm.wait_for_done(timeout=1.0) is False
    assert time.monotonic() - wall >= 0.99
    assert time.process_time() - cpu < 0.1  # pocketpy burns a whole core here
    assert vm.wait_for_done(timeout=10) is True
    with pytest.raises(ValueError, match="^timeout must be None or >= 0, got -1$"):
        vm.wait_for_done(-1)
    with pytest.raises(ValueError, match="^timeout must be None or >= 0, got nan$"):
        vm.wait_for_done(float("nan"))
    with pytest.raises(TypeError, match="^timeout must be None or a number of seconds, got str$"):
        vm.wait_for_done("1")  # type: ignore[arg-type]
    assert vm.wait_for_done(10**400) is True  # longer than a float holds: as long as it takes


def test_currentvm_is_zero_in_vm0_and_i_in_vm_i() -> None:
    assert currentvm() == 0
    with ComputeThread(4) as vm4:
        assert vm4.eval("__import__('runtime').currentvm()") == 4


def test_report_progress_checks_its_arguments_and_is_a_no_op_in_vm0() -> None:
    runtime.report_progress(0.5, "half")
    runtime.report_progress(1)
    with pytest.raises(ValueError, match=r"^fraction must be a number in 0\.\.1, got 1\.5$"):
        runtime.report_progress(1.5)
    with pytest.raises(ValueError, match=r"^fraction must be a number in 0\.\.1, got nan$"):
        runtime.report_progress(float("nan"))
    with pytest.raises(TypeError, match=r"^fraction must be a number in 0\.\.1, got str$"):
        runtime.report_progress("half")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^message must be a str, got int$"):
        runtime.report_progress(0.5, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^fraction must be a number in 0\.\.1, got ndarray$"):
        runtime.report_progress(np.array([0.5, 0.6]))  # type: ignore[arg-type]
    for array in (np.array([0.5]), np.array(0.5)):  # an array of one is still an array
        with pytest.raises(TypeError, match=r"^fraction must be a number in 0\.\.1, got ndarray$"):
            runtime.report_progress(array)  # type: ignore[arg-type]
    runtime.report_progress(np.float32(0.25), "numpy scalars are numbers")
    runtime.report_progress(decimal.Decimal("0.5"), "so are decimals")
    with pytest.raises(TypeError, match=r"^fraction must be a number in 0\.\.1, got complex$"):
        runtime.report_progress(0.5j)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^fraction must be a number in 0\.\.1, got 1000000000"):
        runtime.report_progress(10**400)  # too big for a float: out of range all the same


def test_progress_reported_in_the_vm_is_read_in_vm0(vm: ComputeThread) -> None:
    vm.exec(
        "import threading, runtime\n"
        "gate = threading.Event()\n"
        "def job():\n"
        "    for i in range(1000):\n"
        "        runtime.report_progress(i / 1000, 'terrain')\n"
        "    runtime.report_progress(0.5, 'creatures')\n"
        "    gate.wait(10)\n"
        "    runtime.report_progress(1.0, 'done')\n"
        "    return 'ok'\n"
    )
    assert vm.progress == (0.0, "")
    vm.submit_call("job")
    assert wait_until(lambda: vm.progress == (0.5, "creatures"), timeout=10)
    assert not vm.is_done
    vm.cancel()
    assert "cancelled" in (vm.last_error() or "")


def test_a_jobs_last_report_reaches_vm0_by_its_end_in_every_job(vm: ComputeThread) -> None:
    vm.exec(
        "import runtime\n"
        "def job(n):\n"
        "    for i in range(n):\n"
        "        runtime.report_progress(i / n, 'terrain')\n"
        "    runtime.report_progress(1.0, 'done')\n"
    )
    for n in (100_000, 0, 0):  # the later jobs report just what the first did: VM 0 must see it again
        vm.submit_call("job", n)
        assert vm.wait_for_done(timeout=20)
        assert vm.last_error() is None
        assert vm.progress == (1.0, "done")


def test_progress_of_other_number_types_reaches_vm0_as_a_float_and_an_array_fails_only_the_job(
    vm: ComputeThread,
) -> None:
    vm.exec("import runtime, numpy as np, fractions\nkept = 'namespace'")
    vm.exec("runtime.report_progress(np.float32(0.25), 'numpy')")
    assert vm.progress == (0.25, "numpy") and type(vm.progress[0]) is float
    vm.exec("runtime.report_progress(fractions.Fraction(1, 2), 'fraction')")
    assert vm.progress == (0.5, "fraction") and type(vm.progress[0]) is float
    # This one passes the range comparisons, but no float comes of it: the job fails, not the VM.
    with pytest.raises(RuntimeError, match="TypeError: fraction must be a number in 0..1, got ndarray"):
        vm.exec("runtime.report_progress(np.array([0.5]), 'array')")
    assert vm.eval("kept") == "namespace"


def test_pocketpys_own_thread_test_pattern() -> None:
    """pocketpy's tests/98_thread.py, with only the import changed."""
    thread_1 = ComputeThread(1)
    thread_2 = ComputeThread(2)
    try:
        for t in [thread_1, thread_2]:
            t.exec(
                "def func(a):\n"
                "    from runtime import currentvm\n"
                "    total = 0\n"
                "    for i in range(50000):\n"
                "        total += i\n"
                "    return a, currentvm()\n"
                "x = 123\n"
            )
        assert thread_1.eval("x") == 123
        thread_1.submit_call("func", [1, 2, 3])
        thread_2.submit_call("func", [4, 5, 6])
        assert wait_until(lambda: thread_1.is_done and thread_2.is_done, timeout=20)
        assert thread_1.last_retval() == ([1, 2, 3], 1)
        assert thread_2.last_retval() == ([4, 5, 6], 2)
    finally:
        thread_1.close()
        thread_2.close()


SEED_MAIN = """\
import time
from runtime import ComputeThread

thread = ComputeThread(1)
print("Game Start")

# import worldgen.py
thread.exec('from worldgen import gen_world')

print("Submit WorldGen Job")
thread.submit_call('gen_world', 3, (100, 100), 10)

# wait for worldgen to finish
for i in range(1, 100000):
    print('Frame:', i)
    time.sleep(0.05)
    if thread.is_done:
        break

error = thread.last_error()
if error is not None:
    print("Error:", error)
else:
    retval = thread.last_retval()
    biomes = retval['biomes']
    terrain = retval['terrain']
    creatures = retval['creatures']
    print("World Generation Complete", len(biomes), len(terrain), len(creatures))
"""

STAND_IN_WORLDGEN = """\
import random
from runtime import currentvm

def gen_world(biome_count, terrain_size, creature_count):
    print("worldgen running in VM", currentvm())
    time.sleep(0.3)
    all_biomes = ["forest", "desert", "ocean", "mountain", "swamp"]
    all_creatures = ["wolf", "bear", "fish", "bird", "lizard"]
    width, height = terrain_size
    terrain_data = [random.randint(1, 10) for _ in range(width * height)]
    creatures = [
        {"name": random.choice(all_creatures), "x": random.randint(0, width - 1),
         "y": random.randint(0, height - 1)}
        for i in range(creature_count)
    ]
    return {"biomes": all_biomes[:biome_count], "terrain": terrain_data, "creatures": creatures}

import time
"""


@pytest.mark.slow
def test_the_seed_main_py_runs_unchanged_but_for_its_import(tmp_path: Path) -> None:
    """No __main__ guard in main.py: the VM must not re-run it; VM prints reach the same stdout."""
    (tmp_path / "main.py").write_text(SEED_MAIN)
    (tmp_path / "worldgen.py").write_text(STAND_IN_WORLDGEN)  # the script's folder comes first
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Game Start"
    assert lines.count("Game Start") == 1  # main.py ran once, in VM 0 only
    assert "Submit WorldGen Job" in lines
    assert "worldgen running in VM 1" in lines  # printed inside VM 1, on VM 0's terminal
    assert "Frame: 1" in lines
    assert lines[-1] == "World Generation Complete 3 10000 10"


def test_readme_runtime_example_runs() -> None:
    """The README's "Use the runtime in your own game" snippet, executed as written."""
    readme = (ROOT / "README.md").read_text()
    marker = "## Use the runtime in your own game"
    assert marker in readme
    section = readme.split(marker, 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    done = run_python(textwrap.dedent(code))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result:" in done.stdout
    assert "error:" in done.stdout
