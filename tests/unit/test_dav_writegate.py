"""WriteGate: writes in flight per collection, narrowed by the server's contention answers."""

from __future__ import annotations

import threading

from davsync.dav.writegate import WriteGate


def test_each_contention_answer_halves_the_gate_down_to_one() -> None:
    gate = WriteGate(4, "/c/")
    gate.answered(423)
    assert gate.limit == 2
    gate.answered(500)
    assert gate.limit == 1
    gate.answered(423)
    assert gate.limit == 1


def test_answers_that_are_not_contention_leave_it_alone() -> None:
    gate = WriteGate(4, "/c/")
    for status in (None, 404, 412, 429):
        gate.answered(status)
    assert gate.limit == 4


def test_a_narrowed_gate_holds_the_next_write_until_a_place_is_free() -> None:
    gate = WriteGate(2, "/c/")
    gate.answered(423)
    entered = threading.Event()

    def second() -> None:
        with gate.slot():
            entered.set()

    with gate.slot():
        worker = threading.Thread(target=second)
        worker.start()
        assert not entered.wait(0.2)  # waits for the first write: one at a time now
    worker.join(5)
    assert entered.is_set()
