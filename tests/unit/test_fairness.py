"""The scheduling policy alone (export/fairness.py): which waiting job gets a free worker."""

from __future__ import annotations

from collections import Counter

from sense_plugin.export.fairness import (
    MIN_COST_S,
    FairQueue,
    Limits,
    Ticket,
    choose,
    default_per_user,
    job_cost,
)

RENDER_WEIGHT = 8.0


def render(index: int, owner: str, seconds: float, seq: int) -> Ticket:
    return Ticket((index, 0), owner, job_cost(int(seconds * 1e6), True, RENDER_WEIGHT), seq)


def copy(index: int, owner: str, seconds: float, seq: int, holds: bool = False) -> Ticket:
    return Ticket((index, 0), owner, job_cost(int(seconds * 1e6), False, RENDER_WEIGHT), seq,
                  holds)


def starts(queue: FairQueue, free: int) -> list[tuple[int, int]]:
    """Start tickets while the queue names one for ``free`` workers; their keys in order."""
    keys = []
    while free and (ticket := queue.pop_next(free)) is not None:
        keys.append(ticket.key)
        free -= 1
    return keys


def test_cost_is_weighted_seconds_of_footage() -> None:
    assert job_cost(2_000_000, False, RENDER_WEIGHT) == 2 + MIN_COST_S
    assert job_cost(20_000_000, True, RENDER_WEIGHT) == 160 + MIN_COST_S
    assert job_cost(0, True, RENDER_WEIGHT) == MIN_COST_S  # a snapshot still costs something
    assert default_per_user(1) == 1 and default_per_user(2) == 1 and default_per_user(8) == 7


def test_another_users_short_copy_goes_before_the_rest_of_a_long_render_queue() -> None:
    queue = FairQueue(Limits(workers=1))
    for n in range(4):
        queue.add(render(n, "alice", 20, seq=n))
    assert starts(queue, 1) == [(0, 0)]
    queue.add(copy(9, "bob", 2, seq=9))  # arrives while alice's first render runs
    queue.done((0, 0))
    assert starts(queue, 1) == [(9, 0)]
    queue.done((9, 0))
    assert starts(queue, 1) == [(1, 0)]  # then alice again, in her own order


def test_shares_follow_cost_not_job_count() -> None:
    """One 20-s render weighs as much as many 2-s copies: the copier runs them meanwhile."""
    queue = FairQueue(Limits(workers=1))
    queue.add(render(0, "alice", 20, seq=0))
    queue.add(render(1, "alice", 20, seq=1))
    for n in range(60):
        queue.add(copy(10 + n, "bob", 2, seq=10 + n))
    order = []
    for _ in range(60):
        (key,) = starts(queue, 1)
        order.append(key)
        queue.done(key)
    assert order[0] == (0, 0)  # first come (both users had nothing served)
    # alice's render costs 161, each copy 3: bob runs 54 copies (162) before her second
    assert order.index((1, 0)) == 1 + 54


def test_a_user_joining_late_gets_no_credit_for_the_time_away() -> None:
    queue = FairQueue(Limits(workers=1))
    for n in range(50):  # alice has been served a lot
        queue.add(copy(n, "alice", 10, seq=n))
    for _ in range(40):
        (key,) = starts(queue, 1)
        queue.done(key)
    for n in range(5):
        queue.add(copy(100 + n, "bob", 10, seq=100 + n))
    order = []
    for _ in range(6):
        (key,) = starts(queue, 1)
        order.append("bob" if key[0] >= 100 else "alice")
        queue.done(key)
    # bob is not owed alice's 40 jobs: the two alternate from his first job on
    assert order[:2] == ["bob", "alice"] and order.count("bob") == 3


def test_shares_start_again_once_nobody_waits() -> None:
    queue = FairQueue(Limits(workers=1))
    queue.add(render(0, "alice", 20, seq=0))
    starts(queue, 1)
    queue.done((0, 0))
    assert queue.served("alice") == 0 and len(queue) == 0
    queue.add(copy(1, "bob", 2, seq=1))
    queue.add(copy(2, "alice", 2, seq=2))
    assert starts(queue, 1) == [(1, 0)]


def test_a_user_never_takes_the_last_worker_while_another_waits() -> None:
    running = Counter({"alice": 1})
    waiting = [copy(1, "alice", 1, seq=1), copy(2, "bob", 60, seq=2)]
    served = {"alice": 0.0, "bob": 500.0}  # bob was served far more, yet runs nothing now
    chosen = choose(waiting, running, served, free=1, limits=Limits(workers=3, per_user=2))
    assert chosen is not None and chosen.owner == "bob"
    chosen = choose(waiting, running, served, free=2, limits=Limits(workers=3, per_user=2))
    assert chosen is not None and chosen.owner == "alice"  # room for both: the least served


def test_past_the_cap_only_jobs_that_end_on_their_own_borrow_an_idle_worker() -> None:
    limits = Limits(workers=2, per_user=1)
    queue = FairQueue(limits)
    queue.add(copy(0, "alice", 3600, seq=0, holds=True))
    queue.add(copy(1, "alice", 3600, seq=1, holds=True))
    assert starts(queue, 2) == [(0, 0)]  # the second live job waits: one worker stays free
    queue.add(copy(2, "alice", 5, seq=2))
    assert starts(queue, 1) == [(2, 0)]  # nobody else waits: a bounded job may borrow it
    queue.done((2, 0))
    queue.add(copy(3, "bob", 5, seq=3))
    assert starts(queue, 1) == [(3, 0)]
    assert queue.running_of("alice") == 1 and (1, 0) in queue


def test_without_a_cap_every_worker_may_go_to_one_user() -> None:
    queue = FairQueue(Limits(workers=2, per_user=0))
    queue.add(copy(0, "", 3600, seq=0, holds=True))
    queue.add(copy(1, "", 3600, seq=1, holds=True))
    assert starts(queue, 2) == [(0, 0), (1, 0)]


def test_a_discarded_ticket_never_starts() -> None:
    queue = FairQueue(Limits(workers=1))
    queue.add(copy(0, "alice", 1, seq=0))
    queue.add(copy(1, "alice", 1, seq=1))
    queue.discard((0, 0))
    assert starts(queue, 1) == [(1, 0)]
    assert choose([], Counter(), {}, free=1, limits=Limits(workers=1)) is None
    assert choose([copy(2, "a", 1, seq=2)], Counter(), {}, free=0, limits=Limits(1)) is None
