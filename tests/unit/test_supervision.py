"""`baove up`'s restart policy: systemd's Restart=on-failure with a doubling delay and a crash limit."""

import signal

import pytest

from shared.loops import Backoff
from shared.supervision import GiveUp, LeaveDown, Restart, RestartPolicy, describe_exit, failed

POLICY = RestartPolicy(burst=5, window=60.0, first_delay=1.0, max_delay=8.0)
KILLED = -signal.SIGKILL


@pytest.mark.parametrize(
    ("returncode", "restarted"),
    [(1, True), (3, True), (-signal.SIGKILL, True), (-signal.SIGSEGV, True), (-signal.SIGABRT, True),
     (0, False), (-signal.SIGTERM, False), (-signal.SIGINT, False), (-signal.SIGHUP, False), (-signal.SIGPIPE, False)],
)
def test_failures_are_what_systemd_counts_as_failures(returncode, restarted):
    assert failed(returncode) is restarted


def test_exits_are_described_by_code_or_by_signal_name():
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(-200) == "signal 200"


def test_a_first_crash_is_restarted_after_the_first_delay():
    assert POLICY.decide(KILLED, [100.0], now=100.0) == Restart(1.0)


def test_the_delay_doubles_with_each_recent_crash_up_to_the_cap():
    delays = [POLICY.decide(1, [0.0, 1.0, 2.0, 3.0][:n], now=3.0).delay for n in range(1, 5)]
    assert delays == [1.0, 2.0, 4.0, 8.0]
    wide = RestartPolicy(burst=20, window=60.0, first_delay=1.0, max_delay=8.0)
    assert wide.decide(1, [float(t) for t in range(10)], now=10.0) == Restart(8.0)


def test_the_fifth_crash_within_the_window_gives_up_and_says_why():
    decision = POLICY.decide(KILLED, [0.0, 5.0, 10.0, 20.0, 59.0], now=59.0)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "crashed 5 times within 60 s (last: signal SIGKILL)"


def test_crashes_older_than_the_window_are_forgotten_and_the_backoff_starts_over():
    assert POLICY.decide(1, [0.0, 15.0, 20.0, 30.0, 70.0], now=70.0) == Restart(8.0)  # 0.0 is gone: 4 recent
    assert POLICY.decide(1, [0.0, 5.0, 10.0, 20.0, 200.0], now=200.0) == Restart(1.0)
    assert POLICY.recent([0.0, 30.0, 61.0], now=90.5) == [61.0]


@pytest.mark.parametrize("returncode", [0, -signal.SIGTERM, -signal.SIGINT])
def test_a_clean_stop_is_left_down_whatever_the_crash_history(returncode):
    decision = POLICY.decide(returncode, [0.0, 1.0, 2.0, 3.0, 4.0], now=5.0)
    assert isinstance(decision, LeaveDown)
    assert "clean stop" in decision.reason


def test_backoff_nth_is_the_delay_after_that_many_failures_without_moving_the_backoff():
    backoff = Backoff(0.5, 10.0)
    assert [backoff.nth(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff.nth(10_000) == 10.0
    assert backoff.delay() == 0.5
