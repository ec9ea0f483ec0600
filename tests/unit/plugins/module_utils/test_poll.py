from unit.fakes import Clock

from ansible_collections.cmk.atlas.plugins.module_utils._poll import poll


def test_poll_returns_at_once_when_the_check_holds():
    clock = Clock()
    assert poll(lambda: True, 60, 5, clock=clock, sleep=clock.sleep) == (True, 1, 0.0)
    assert clock.sleeps == []


def test_poll_doubles_up_to_the_cap_and_never_sleeps_past_the_deadline():
    clock = Clock()
    waits = []
    polled = poll(lambda: False, 40, 5, 15, clock=clock, sleep=clock.sleep, log=waits.append)
    assert clock.sleeps == [5, 10, 15, 10] == waits
    assert (polled.done, polled.attempts, polled.elapsed) == (False, 5, 40)


def test_poll_without_a_cap_keeps_the_interval_and_stops_when_the_check_holds():
    clock = Clock()
    answers = iter([False, False, True])
    polled = poll(lambda: next(answers), 60, 2, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [2, 2] and polled == (True, 3, 4)


def test_a_timeout_of_zero_tries_once():
    clock = Clock()
    assert poll(lambda: False, 0, 5, clock=clock, sleep=clock.sleep) == (False, 1, 0.0)
