"""What `baove up` does when one of its processes ends: systemd's `Restart=on-failure`, as a pure decision.

A failure (a non-zero exit code, or a signal other than SIGTERM, SIGINT, SIGHUP or SIGPIPE, as systemd counts them)
is restarted after a delay that doubles with each recent crash; a clean exit is left down; a process that crashed
`burst` times within `window` seconds is given up, and everything stops (systemd's StartLimitBurst and
StartLimitIntervalSec). The supervisor's loop (services/cli.py) does the I/O around it.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from shared.loops import Backoff

# The signals systemd treats as a clean stop, not as a failure.
CLEAN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE})


def describe_exit(returncode: int) -> str:
    """`exit code 1` or `signal SIGKILL`, from a Popen return code (negative: killed by that signal)."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


def failed(returncode: int) -> bool:
    """Whether `Restart=on-failure` restarts a process that ended so."""
    if returncode >= 0:
        return returncode != 0
    return -returncode not in {int(s) for s in CLEAN_SIGNALS}


@dataclass(frozen=True)
class Restart:
    delay: float  # seconds to wait before starting it again


@dataclass(frozen=True)
class LeaveDown:
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: str


Decision = Restart | LeaveDown | GiveUp


@dataclass(frozen=True)
class RestartPolicy:
    burst: int = 5  # this many crashes ...
    window: float = 60.0  # ... within this many seconds: give up
    first_delay: float = 0.5
    max_delay: float = 8.0

    def recent(self, crashes: Sequence[float], now: float) -> list[float]:
        """The crash times still inside the window; older ones are forgotten (the backoff starts over)."""
        return [t for t in crashes if now - t < self.window]

    def decide(self, returncode: int, crashes: Sequence[float], now: float) -> Decision:
        """The next action for a process that just ended with `returncode`; `crashes` are the times of its
        failures so far, this one included."""
        if not failed(returncode):
            return LeaveDown(f"{describe_exit(returncode)} is a clean stop (Restart=on-failure leaves it down)")
        recent = self.recent(crashes, now)
        if len(recent) >= self.burst:
            return GiveUp(f"crashed {len(recent)} times within {self.window:g} s (last: {describe_exit(returncode)})")
        return Restart(Backoff(self.first_delay, self.max_delay).nth(max(len(recent), 1) - 1))
