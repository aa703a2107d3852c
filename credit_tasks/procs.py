"""Processes of our own: a free port, waiting for a condition, a private redis-server.

Shared by the tests, the benchmarks and `credit-monitor demo`/`run`. It speaks to Redis over
a bare socket, so it can tell a server is up before any client is built.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")
HOST = "127.0.0.1"
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
_PR_SET_PDEATHSIG = 1


def _find_prctl() -> Callable[..., int] | None:
    # resolved now, in the parent: after a fork only the call itself is safe to make
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return prctl


_PRCTL = _find_prctl()


def signal_at_parent_death(signum: int) -> None:
    """Have the kernel send `signum` to this process when its parent dies, however (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signum, 0, 0, 0)


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies, even by SIGKILL (Linux).

    Call it in the child: as a `preexec_fn`, or first thing in a pool process. A parent that
    died before the request took effect is followed at once.
    """
    signal_at_parent_death(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def free_port() -> int:
    """A port nobody listens on right now, for a server of ours to bind."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """True when a server could bind `port` on localhost now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    """True when something accepts connections on `port` on localhost."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def wait_until(
    predicate: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.05
) -> T:
    """Poll `predicate` until it returns something truthy, and return that.

    Raises TimeoutError naming `what` after `timeout_s`; whatever `predicate` raises
    (a process that died, a stop requested) ends the wait at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`: to the whole group when the process leads one."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(proc.pid) == proc.pid:  # start_new_session: its children go too
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()


def redis_binary() -> str:
    """The path of redis-server; FileNotFoundError when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    return binary


def redis_argv(
    port: int, workdir: Path, *args: str, tls: bool = False, persist: bool = False
) -> list[str]:
    """redis-server on localhost only, data in `workdir`; `args` come last, so they win."""
    ports = ("--port", "0", "--tls-port", str(port)) if tls else ("--port", str(port))
    keep = () if persist else NO_PERSISTENCE
    return [redis_binary(), *ports, "--bind", HOST, *keep, "--dir", str(workdir), *args]


def redis_ready(port: int, tls: bool = False) -> bool:
    """True once redis-server on `port` takes commands; a TLS port once it accepts."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            if tls:
                return True
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    # -NOAUTH also means up; -LOADING means still reading its data from disk
    return bool(reply) and not reply.startswith(b"-LOADING")


class RedisServer:
    """A private redis-server on localhost, without persistence unless `args` turn it on.

    The port is free at construction (or given) and kept, so the server can be stopped and
    started again where its clients expect it. Its output goes to `redis-server.log` in
    `workdir`, with its data.
    """

    def __init__(
        self,
        workdir: Path,
        *args: str,
        port: int | None = None,
        tls: bool = False,
        new_session: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.args = args
        self.port = port or free_port()
        self.tls = tls
        self.new_session = new_session  # so a Ctrl-C meant for us does not reach it
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "redis-server.log"

    def url(self, db: int | None = None) -> str:
        """`redis://127.0.0.1:PORT`, with `/db` when given."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{HOST}:{self.port}" + ("" if db is None else f"/{db}")

    def start(self, timeout_s: float = 10.0) -> Self:
        """Start it and wait until it takes commands; RuntimeError when it exits instead."""
        argv = redis_argv(self.port, self.workdir, *self.args, tls=self.tls)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        self.proc = proc
        try:
            wait_until(
                lambda: proc.poll() is not None or redis_ready(self.port, self.tls),
                timeout_s,
                f"redis-server on port {self.port} (see {self.log})",
            )
        except TimeoutError:
            self.stop()
            raise
        if proc.poll() is not None:
            command = " ".join(("redis-server", *self.args))
            raise RuntimeError(
                f"{command} exited at start (code {proc.returncode}): see {self.log}"
            )
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def sentinel_argv(config: Path) -> list[str]:
    """redis-sentinel reading `config`; Debian's redis-sentinel, else redis-server --sentinel."""
    binary = shutil.which("redis-sentinel")
    if binary is not None:
        return [binary, str(config)]
    return [redis_binary(), str(config), "--sentinel"]


class RedisSentinel:
    """A Sentinel on localhost that watches the master on `master_port` as `name`.

    Its config file (which Sentinel rewrites as it learns) and its log live in `workdir`.
    `password` is the Sentinel's own (requirepass, also used between Sentinels);
    `master_password` is the one it uses on the master and replicas.
    """

    def __init__(
        self,
        workdir: Path,
        master_port: int,
        *,
        name: str = "mymaster",
        quorum: int = 1,
        password: str | None = None,
        master_password: str | None = None,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 10_000,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.name = name
        self.password = password
        lines = [
            f"bind {HOST}",
            f"port {self.port}",
            f'dir "{self.workdir}"',
            f"sentinel monitor {name} {HOST} {master_port} {quorum}",
            f"sentinel down-after-milliseconds {name} {down_after_ms}",
            f"sentinel failover-timeout {name} {failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if master_password is not None:
            lines.append(f"sentinel auth-pass {name} {master_password}")
        if password is not None:
            lines += [f"requirepass {password}", f"sentinel sentinel-pass {password}"]
        self._config = "\n".join(lines) + "\n"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "sentinel.log"

    def url(self) -> str:
        return f"sentinel://{HOST}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "sentinel.conf"
        config.write_text(self._config)
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                sentinel_argv(config), stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.proc = proc
        try:
            wait_until(
                lambda: proc.poll() is not None or redis_ready(self.port),
                timeout_s,
                f"redis-sentinel on port {self.port} (see {self.log})",
            )
        except TimeoutError:
            self.stop()
            raise
        if proc.poll() is not None:
            raise RuntimeError(f"redis-sentinel exited at start: see {self.log}")
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace_s)
