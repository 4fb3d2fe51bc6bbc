"""The demo's command line: every option's rule and its error, the screenshot path, reproducible
headless pictures, and Ctrl+C.

Runs of the game are subprocesses (``python -m game``) started outside the repository, so they import
the game the way a user's shell does; option checks call the parser in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from vmtools import start_game, wait_until

from game import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """``cli.main`` checks the options but starts no game: the arguments it would run with land here."""
    accepted: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> dict[str, object]:
        accepted.append(args)
        return {"error": None, "world_frame": 1, "screenshot_error": None}  # what main() reads

    monkeypatch.setattr(cli, "run", run)
    return accepted


def refused(capsys: pytest.CaptureFixture[str], accepted: list[argparse.Namespace], *argv: str) -> str:
    """The error ``python -m game argv`` prints: it must refuse ``argv`` (exit code 2) and run nothing."""
    with pytest.raises(SystemExit) as stop:
        cli.main(list(argv))
    assert accepted == [], f"{argv} were accepted"
    assert stop.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "0x5"], "argument --size: the world size must be at least 1x1 cells, got '0x5'"),
        (["--size", "-5x5"], "argument --size: the world size must be at least 1x1 cells, got '-5x5'"),
        (["--size=-5x5"], "argument --size: the world size must be at least 1x1 cells, got '-5x5'"),
        (["--size", "7"], "argument --size: expected WIDTHxHEIGHT like 2048x2048, got '7'"),
        *(
            (
                ["--zoom", zoom],
                f"argument --zoom: the zoom must be a number above 0 and at most 32 "
                f"(screen pixels per cell), got '{zoom}'",
            )
            for zoom in ("0", "-1", "nan", "inf", "-inf", "1e9", "32.5", "wide")
        ),
        *(
            (
                ["--window", window],
                f"argument --window: the window must be from 320x200 to 7680x4320 pixels, got '{window}'",
            )
            for window in ("100000x100000", "64x64", "319x200", "320x199", "7681x4320")
        ),
        (["--frames", "0"], "argument --frames: frames must be a whole number of at least 1, got '0'"),
        (["--frames", "-3"], "argument --frames: frames must be a whole number of at least 1, got '-3'"),
        (["--timeout", "0"], "argument --timeout: the timeout must be a number of seconds above 0, got '0'"),
        (
            ["--timeout", "nan"],
            "argument --timeout: the timeout must be a number of seconds above 0, got 'nan'",
        ),
        *(
            (["--vms", vms], f"argument --vms: vms must be a whole number from 1 to 15, got '{vms}'")
            for vms in ("0", "16", "-1", "two", "1.5")
        ),
        *(
            (
                ["--cache-mb", mb],
                f"argument --cache-mb: cache-mb must be a number of MiB of at least 1, got '{mb}'",
            )
            for mb in ("0", "0.5", "nan", "inf", "lots")
        ),
        *(
            (
                ["--at", at],
                f"argument --at: at must be X,Y in world cells, each from -2**31 to 2**31-1, got '{at}'",
            )
            for at in ("2147483648,0", "0,-2147483649", "5", "1,2,3", "a,b", "nan,0")
        ),
        *(
            (
                ["--fly", fly],
                f"argument --fly: fly must be VX,VY in cells per second, two finite numbers, got '{fly}'",
            )
            for fly in ("300", "inf,0", "fast,0")
        ),
    ],
)
def test_bad_options_are_refused_with_their_rule(
    capsys: pytest.CaptureFixture[str], no_run: list[argparse.Namespace], argv: list[str], message: str
) -> None:
    assert refused(capsys, no_run, *argv) == f"python -m game: error: {message}"


@pytest.mark.parametrize("option", [["--vms", "2"], ["--cache-mb", "64"], ["--at", "5,5"], ["--fly", "1,0"]])
def test_the_endless_worlds_options_are_refused_with_size(
    capsys: pytest.CaptureFixture[str], no_run: list[argparse.Namespace], option: list[str]
) -> None:
    assert refused(capsys, no_run, "--size", "64x64", *option) == (
        f"python -m game: error: {option[0]} is for the endless world, which --size replaces by a finite one"
    )


def test_good_options_pass_including_the_edges(no_run: list[argparse.Namespace]) -> None:
    assert cli.main(["--size", "1x1", "--zoom", "32", "--window", "320x200", "--seed", "-1"]) == 0
    assert cli.main(["--zoom", "0.01", "--window", "7680x4320", "--size", "1x100000", "--frames", "1"]) == 0
    assert (
        cli.main(["--vms", "15", "--cache-mb", "1", "--at", "-2147483648,2147483647", "--fly", "-4800,0.5"])
        == 0
    )
    first, second, endless = no_run
    assert first.size is not None and endless.size is None  # without --size, the world is endless
    assert (endless.vms, endless.cache_mb, endless.at, endless.fly) == (
        15,
        1.0,
        (-(2**31), 2**31 - 1),
        (-4800, 0.5),
    )
    assert (first.size, first.zoom, first.window, first.seed) == ((1, 1), 32.0, (320, 200), -1)
    assert (second.zoom, second.window, second.size, second.frames) == (0.01, (7680, 4320), (1, 100000), 1)
    help_text = " ".join(cli.parser().format_help().split())
    for rule in ("at least 1x1", "320x200 to 7680x4320", "above 0 and at most 32", ".png", "not counted"):
        assert rule in help_text, rule


def test_a_bad_screenshot_path_is_refused_before_the_run(
    capsys: pytest.CaptureFixture[str], no_run: list[argparse.Namespace], tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "shot.png"
    assert refused(capsys, no_run, "--headless", "--screenshot", str(missing)).endswith(
        f"argument --screenshot: the screenshot's directory must exist, got '{missing}'"
    )
    assert refused(capsys, no_run, "--screenshot", str(tmp_path / "shot.bmp")).endswith(
        f"the screenshot must be a .png file, got '{tmp_path / 'shot.bmp'}'"
    )
    (tmp_path / "folder.png").mkdir()
    assert refused(capsys, no_run, "--screenshot", str(tmp_path / "folder.png")).endswith(
        "the screenshot must be a file, not a directory, got " + repr(str(tmp_path / "folder.png"))
    )
    assert cli.main(["--screenshot", str(tmp_path / "SHOT.PNG")]) == 0
    assert no_run[0].screenshot == str(tmp_path / "SHOT.PNG")


def test_a_screenshot_that_cannot_be_written_is_refused(
    capsys: pytest.CaptureFixture[str],
    no_run: list[argparse.Namespace],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A read-only directory, as the kernel would report it (tests may run as root, who may write anywhere).
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    error = refused(capsys, no_run, "--screenshot", str(tmp_path / "a.png"))
    assert error.endswith(f"the screenshot's file must be writable, got '{tmp_path / 'a.png'}'")


def test_with_no_display_the_windowed_game_exits_at_once_naming_headless(tmp_path: Path) -> None:
    # No X, no Wayland, no driver asked for: SDL falls back to drawing off screen, and the game used to
    # run there unseen until killed. It must stop before starting VM 1 and say what to do instead.
    run = start_game("--size", "64x64", cwd=tmp_path, new_session=True, no_display=True)
    try:
        out, err = run.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        pytest.fail("the windowed game kept running with no display")
    assert run.returncode == 2, err
    assert out == ""
    assert "no display" in err and "--headless" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("driver", ["offscreen", "dummy"])
def test_an_off_screen_driver_is_refused_only_when_nobody_asked_for_it(driver: str) -> None:
    with pytest.raises(cli.NoDisplayError, match="add --headless to run without a window"):
        cli.check_display(driver, None)
    cli.check_display(driver, driver)  # SDL_VIDEODRIVER set by the user: they know there is no window
    cli.check_display("x11", None)


@pytest.mark.slow
def test_a_screenshot_that_cannot_be_saved_still_gives_the_json_line(tmp_path: Path) -> None:
    # The path passes the checks; the save itself fails (a full disk, say): no traceback, results kept.
    code = (
        "import sys, pygame, game.cli\n"
        "def full_disk(*args, **kwargs):\n"
        "    raise pygame.error('No space left on device')\n"
        "pygame.image.save = full_disk\n"
        "sys.exit(game.cli.main(sys.argv[1:]))\n"
    )
    shot = tmp_path / "shot.png"
    argv = ("--headless", "--frames", "5", "--size", "64x64", "--screenshot", str(shot))
    out, err = start_game(*argv, cwd=tmp_path, code=code).communicate(timeout=60)
    summary = json.loads(out)
    assert summary["screenshot"] is None and summary["error"] is None and summary["frames"] == 5
    assert summary["screenshot_error"] == f"could not save the screenshot to {shot}: No space left on device"
    assert err.strip() == summary["screenshot_error"]  # one clear line, no traceback


@pytest.mark.slow
def test_the_same_headless_command_saves_the_same_png(tmp_path: Path) -> None:
    # With the HUD on: its FPS and graph show the game clock, so they do not vary either. The world
    # arrives on a different frame in each run (a third run competes with a busy process for that).
    shots = [tmp_path / f"shot{i}.png" for i in range(3)]
    argv = ("--headless", "--frames", "60", "--seed", "42", "--size", "512x512", "--zoom", "2.5")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        runs = [start_game(*argv, "--screenshot", str(shot), cwd=tmp_path) for shot in shots]
        results = [run.communicate(timeout=90) for run in runs]
    finally:
        hog.kill()
        hog.wait()
    summaries = [json.loads(out) for out, _ in results]
    pictures = {shot.read_bytes() for shot in shots}
    assert len(pictures) == 1, [s["world_frame"] for s in summaries]
    assert all(s["frames"] == 60 and s["total_frames"] == s["world_frame"] + 60 for s in summaries)


def session_alive(sid: int) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:
                alive.append(int(entry))
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_ctrl_c_quits_quietly_with_130_and_leaves_no_process(tmp_path: Path) -> None:
    # Ctrl+C in a terminal sends SIGINT to the whole process group; here it comes on the 30th frame of
    # the windowed game, from inside the frame clock (where the loop spends its time), as a real signal.
    code = (
        "import os, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import game.cli, game.clock\n"
        "tick = game.clock.FrameClock.tick\n"
        "frames = []\n"
        "def tick_then_ctrl_c(self, *args):\n"
        "    frames.append(1)\n"
        "    if len(frames) == 30:\n"
        "        os.killpg(0, signal.SIGINT)\n"
        "    return tick(self, *args)\n"
        "game.clock.FrameClock.tick = tick_then_ctrl_c\n"
        "sys.exit(game.cli.main(sys.argv[1:]))\n"
    )
    run = start_game("--size", "1024x1024", cwd=tmp_path, code=code, new_session=True)
    out, err = run.communicate(timeout=60)
    assert (run.returncode, out, err) == (130, "", "")
    assert wait_until(lambda: not session_alive(run.pid), timeout=5.0), session_alive(run.pid)


@pytest.mark.slow
def test_headless_gives_up_after_the_timeout_with_its_rule(tmp_path: Path) -> None:
    # A 4096x4096 world takes VM 1 seconds; the run stops waiting after 0.2 s and says why.
    run = start_game("--headless", "--size", "4096x4096", "--timeout", "0.2", cwd=tmp_path)
    out, err = run.communicate(timeout=60)
    summary = json.loads(out)
    assert run.returncode == 1
    assert err.strip() == "the world did not arrive within --timeout 0.2 s"
    assert summary["world_frame"] is None and summary["frames"] == 0 and summary["total_frames"] >= 1


def test_an_endless_zoom_below_the_coarsest_level_is_refused(
    capsys: pytest.CaptureFixture[str], no_run: list[argparse.Namespace]
) -> None:
    # It used to be clamped to 0.0625 quietly; the README lists it among the rules checked up front.
    assert refused(capsys, no_run, "--zoom", "0.01") == (
        "python -m game: error: --zoom: the endless world's zoom must be at least 0.0625 (one screen pixel "
        "per sample of its coarsest level of detail), got 0.01"
    )
