"""The care scheduler's lock: one holder at a time, a lease that runs out, a lock that dies with its
connection."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from care.lock import AdvisoryLock, LeaseLock, advisory_key, scheduler_lock


def test_scheduler_lock_fits_the_database(store_engine: Engine) -> None:
    lock = scheduler_lock(store_engine)
    expected = AdvisoryLock if store_engine.dialect.name == "postgresql" else LeaseLock
    assert isinstance(lock, expected)


def test_advisory_key_is_stable_and_signed_64_bit() -> None:
    assert advisory_key("care_scheduler") == advisory_key("care_scheduler")
    assert advisory_key("care_scheduler") != advisory_key("other")
    assert -(2**63) <= advisory_key("care_scheduler") < 2**63


def test_lock_second_holder_waits_until_release(store_engine: Engine) -> None:
    first, second = scheduler_lock(store_engine), scheduler_lock(store_engine)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.renew()
    assert first.try_acquire()  # already ours: still ours
    first.release()
    assert second.try_acquire()
    assert not first.try_acquire()
    second.release()


def test_lock_taken_by_exactly_one_of_many_at_once(store_engine: Engine) -> None:
    locks = [scheduler_lock(store_engine) for _ in range(6)]
    start = threading.Barrier(len(locks))

    def take(lock: LeaseLock | AdvisoryLock) -> bool:
        start.wait()
        return lock.try_acquire()

    with ThreadPoolExecutor(max_workers=len(locks)) as pool:
        taken = list(pool.map(take, locks))
    assert taken.count(True) == 1
    for lock in locks:
        lock.release()


def test_lease_expires_without_heartbeat_and_a_standby_takes_over(store_engine: Engine) -> None:
    leader = LeaseLock(store_engine, ttl_s=0.3)
    standby = LeaseLock(store_engine, ttl_s=0.3)
    assert leader.try_acquire()
    assert not standby.try_acquire()
    time.sleep(0.4)  # the leader "died": no heartbeat
    assert standby.try_acquire()
    assert standby.holder_now()[0] == standby.holder
    # The old leader's heartbeat now fails: it must stop leading.
    assert not leader.renew()


def test_lease_heartbeat_keeps_it(store_engine: Engine) -> None:
    leader = LeaseLock(store_engine, ttl_s=0.4)
    standby = LeaseLock(store_engine, ttl_s=0.4)
    assert leader.try_acquire()
    for _ in range(4):
        time.sleep(0.15)
        assert leader.renew()
        assert not standby.try_acquire()
    leader.release()
    assert standby.holder_now() == (None, None) or standby.try_acquire()


def test_lease_rejects_a_non_positive_ttl(store_engine: Engine) -> None:
    with pytest.raises(ValueError):
        LeaseLock(store_engine, ttl_s=0)


@pytest.mark.parametrize("store_engine", ["postgresql"], indirect=True)  # advisory locks are PostgreSQL's
def test_advisory_lock_released_when_its_connection_dies(store_engine: Engine) -> None:
    leader, standby = AdvisoryLock(store_engine), AdvisoryLock(store_engine)
    assert leader.try_acquire()
    assert not standby.try_acquire()
    # What a SIGKILL does to the leader: its connection ends, and the server frees the lock.
    assert leader._connection is not None
    leader._connection.invalidate()
    assert standby.try_acquire()
    assert not leader.renew()
    standby.release()
