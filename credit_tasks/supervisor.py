"""The processes one `demo` or `run` starts, each in its own process group, and their stop.

Stopping sends SIGTERM to each child's whole process group, waits up to a grace period, then
sends SIGKILL to the group. The group matters: a worker's warm shutdown waits for the tasks
it runs, and a check retrying a slow API may run for its whole retry budget (30 s); its pool
processes stopped at once, the worker has nothing to wait for. A check stopped so is
harmless (the next beat checks again, its lock lapses in seconds); an alert delivery is
handed back to the queue (`reject_on_worker_lost`) and made at the next start, once.

SIGINT, SIGTERM and SIGHUP only set a flag that the waiting loops poll: a signal handler
must take no lock, or a second signal arriving while the first handler holds it hangs the
process (SIGTERM to the group of `make demo` reaches us twice: once from the group, once
when the recipe's shell, which make passes it to, dies of it). The supervisor asks for SIGTERM
when its parent dies, so SIGTERM to make's pid alone stops it too. Every child is started to
die with the supervisor (`PR_SET_PDEATHSIG`), so none outlives it even when it is killed with
SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .errors import StartError

GRACE_S = 2.5  # SIGTERM to a child's process group, then SIGKILL to it after this
LAST_GRACE_S = 1.5  # the same for the services stopped last (Redis), which save their data
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def say(line: str = "") -> None:
    """Print a line for the person at the terminal, now."""
    try:
        print(line, flush=True)
    except OSError:
        # a closed terminal or pipe (`make demo | tee`, then Ctrl-C) must not stop the cleanup
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_last: bool = False  # a service the others need until they are gone (Redis)


class Supervisor:
    """Starts children with their output in `log_dir`, and stops every one of them."""

    def __init__(
        self, log_dir: Path, grace_s: float = GRACE_S, last_grace_s: float = LAST_GRACE_S
    ) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.grace_s = grace_s
        self.last_grace_s = last_grace_s
        self.children: list[Child] = []
        self.cleanups: list[Callable[[], None]] = []  # in-process services, stopped last
        self.stop_requested = False  # set by a signal: a plain attribute, no lock

    def handle_signals(self) -> None:
        """From now on SIGINT, SIGTERM and SIGHUP ask for a stop instead of ending us."""

        def on_signal(signum: int, frame: object) -> None:
            self.stop_requested = True

        for signum in STOP_SIGNALS:
            signal.signal(signum, on_signal)

    def stop_when_parent_dies(self) -> None:
        """Ask for a stop when our parent dies: the kernel sends SIGTERM (see handle_signals).

        `make demo` runs us under `sh -c` (for its exit-code test). On SIGTERM, make passes the
        signal to that shell, which dies of it without passing it on: its death is our
        SIGTERM, so we stop rather than run on with no parent.
        """
        parent = os.getppid()
        procs.signal_at_parent_death(signal.SIGTERM)
        if os.getppid() != parent:  # it died before the request took effect
            self.stop_requested = True

    def start(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path, stop_last: bool = False
    ) -> Child:
        log = self.log_dir / f"{name}.log"
        me = os.getpid()
        with log.open("wb") as out:
            # its own session: Ctrl-C reaches only us, and we stop the whole group
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: procs.die_with_parent(me),
            )
        child = Child(name, proc, log, stop_last)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, ready: Callable[[], bool], timeout_s: float = 30) -> None:
        """Wait until `ready()`; StartError naming the log when the child exits or is slow."""

        def up() -> bool:
            if self.stop_requested:
                raise KeyboardInterrupt
            if child.proc.poll() is not None:
                raise StartError(
                    f"{child.name} exited at start (code {child.proc.returncode}): see {child.log}"
                )
            return ready()

        try:
            procs.wait_until(up, timeout_s, child.name, interval_s=0.1)
        except TimeoutError:
            raise StartError(
                f"{child.name} did not start in {timeout_s:g} s: see {child.log}"
            ) from None

    def dead(self) -> Child | None:
        """The first child that exited, if any did."""
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self) -> None:
        """Stop every child (those marked `stop_last` after the others), then the cleanups."""
        if self.children:
            say(f"Stopping {', '.join(c.name for c in reversed(self.children))} …")
        first = [c for c in self.children if not c.stop_last]
        last = [c for c in self.children if c.stop_last]
        self._stop_group(first, self.grace_s)
        self._stop_group(last, self.last_grace_s)
        for cleanup in self.cleanups:
            cleanup()
        if self.children:
            say("Stopped: nothing started here is left running.")
        self.children.clear()
        self.cleanups.clear()

    def _stop_group(self, group: list[Child], grace_s: float) -> None:
        for child in group:
            # the whole group: a worker's pool processes stop now, not after their tasks
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in group:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} ignored SIGTERM for {grace_s:g} s: killing it")
            with contextlib.suppress(ProcessLookupError):  # pool processes left behind
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
