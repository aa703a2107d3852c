"""The check lock on a real redis-server: renewed while held, by one thread per store."""

from __future__ import annotations

import os
import threading
import time

import redis

from credit_tasks.store import Store

from .conftest import wait_for

LOCK = "openrouter:monitoring:lock"


def _renewers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "check-lock"]


def test_a_held_lock_outlives_its_ttl_and_lapses_once_let_go(
    store: Store, rdb: redis.Redis
) -> None:
    claim = store.claim(0.3)
    assert claim.token is not None
    with store.renewing(claim.token, 0.3):
        time.sleep(1.0)  # over three TTLs: only the renewals keep it
        assert rdb.get(LOCK) == claim.token
        assert 0 < rdb.pttl(LOCK) <= 300
    wait_for(lambda: not rdb.exists(LOCK), 2.0, "the lock to lapse")
    assert store.claim(0.3).token is not None


def test_checks_in_a_row_and_at_once_share_one_renewer_thread_that_close_ends(
    store: Store, rdb: redis.Redis
) -> None:
    before = len(_renewers())
    for _ in range(5):
        claim = store.claim(5.0)
        assert claim.token is not None
        with store.renewing(claim.token, 5.0):
            pass
        store.release(claim.token)
    assert len(_renewers()) == before + 1

    # two tokens held at once (as two stores would): each is renewed
    with store.renewing("first", 0.3), store.renewing("second", 0.3):
        rdb.set(LOCK, "second", px=300)
        time.sleep(0.8)
        assert rdb.get(LOCK) == "second"
    assert len(_renewers()) == before + 1
    store.close()
    assert len(_renewers()) == before


def test_a_store_used_again_after_close_renews_again(store: Store, rdb: redis.Redis) -> None:
    store.close()
    claim = store.claim(0.3)
    assert claim.token is not None
    with store.renewing(claim.token, 0.3):
        time.sleep(0.8)
        assert rdb.get(LOCK) == claim.token


def test_a_forked_child_renews_with_a_thread_of_its_own(store: Store, rdb: redis.Redis) -> None:
    claim = store.claim(5.0)
    assert claim.token is not None
    with store.renewing(claim.token, 5.0):
        pid = os.fork()
        if pid == 0:  # the child: the parent's renewer thread is not here
            code = 1
            try:
                store.release(claim.token)
                child = store.claim(0.3)
                with store.renewing(child.token or "", 0.3):
                    time.sleep(0.8)
                    code = 0 if rdb.get(LOCK) == child.token else 2
                store.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
