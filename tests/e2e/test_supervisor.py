"""`baove up`'s supervisor with small stand-in processes: a crash is restarted, one that keeps crashing stops it all."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from services.cli import Supervisor
from shared.supervision import RestartPolicy

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASHER = [sys.executable, "-c", "import sys; sys.exit(3)"]
QUICK = RestartPolicy(burst=5, window=60.0, first_delay=0.05, max_delay=0.2)


def until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def test_a_killed_process_is_restarted_and_the_others_are_left_alone(capfd):
    supervisor = Supervisor({"routing": SLEEPER, "intake": SLEEPER}, QUICK, poll=0.02)
    supervisor.start_all()
    intake_pid, routing_pid = supervisor.children["intake"].pid, supervisor.children["routing"].pid
    outcome: list[int] = []
    watcher = threading.Thread(target=lambda: outcome.append(supervisor.watch()))
    watcher.start()
    try:
        os.kill(routing_pid, signal.SIGKILL)
        until(lambda: supervisor.children["routing"] is not None and supervisor.children["routing"].pid != routing_pid)
        assert supervisor.children["intake"].pid == intake_pid and supervisor.children["intake"].poll() is None
    finally:
        supervisor.stopping = True
        watcher.join(30)
    assert outcome == [0]
    assert all(child.poll() is not None for child in supervisor.children.values())  # stopped on Ctrl-C
    said = capfd.readouterr().err
    assert "baove up: routing ended (signal SIGKILL); restart 1 in 0.05 s, the others keep serving" in said
    assert f"baove up: routing restarted (restart 1, pid {supervisor.children['routing'].pid})" in said
    assert "intake" not in said


def test_a_process_that_keeps_crashing_stops_everything_with_the_reason_and_exit_1(capfd):
    supervisor = Supervisor({"intake": SLEEPER, "reporting": CRASHER}, QUICK, poll=0.02)
    supervisor.start_all()
    started = time.monotonic()
    assert supervisor.watch() == 1
    assert time.monotonic() - started < 20
    assert all(child is None or child.poll() is not None for child in supervisor.children.values())
    said = capfd.readouterr().err
    assert said.count("baove up: reporting ended (exit code 3); restart") == 4
    assert "baove up: giving up: reporting crashed 5 times within 60 s (last: exit code 3); stopping everything" in said


def test_a_clean_exit_is_left_down_and_up_ends_when_nothing_is_left(capfd):
    supervisor = Supervisor({"console": [sys.executable, "-c", "pass"]}, QUICK, poll=0.02)
    supervisor.start_all()
    assert supervisor.watch() == 0
    said = capfd.readouterr().err
    assert "baove up: console ended (exit code 0); not restarted: exit code 0 is a clean stop" in said
    assert "restart 1" not in said
