"""The worker pool (any2dataset/workers.py): results in order or as they come, failures
that name the worker with its exit code, messages from stream workers, nothing started
for empty input. Worker functions live here: workers import them by name."""

import os
import time

import pytest

from any2dataset.errors import BadInput, ExitCode, WorkerFailed
from any2dataset.workers import Pool, run_tasks


def _square(state, item):
    if item == "bad":
        raise BadInput("a bad item")
    if item == "bug":
        raise ZeroDivisionError("division by zero")
    if item == "die":
        os._exit(7)
    time.sleep(0.05 if item % 2 == 0 else 0)  # even items finish later than odd ones
    return state + item * item


def _offset(base):
    return base


def _echo_pids(inbox, send, tag):
    for item in inbox:
        send((tag, item, os.getpid()))


def test_results_come_in_input_order_from_every_worker():
    results = list(run_tasks(_square, range(40), 2, setup=_offset, setup_args=(1000,)))
    assert results == [1000 + i * i for i in range(40)]


def test_unordered_results_are_each_item_once():
    results = list(run_tasks(_square, range(40), 2, ordered=False, in_flight=2, setup=_offset, setup_args=(0,)))
    assert sorted(results) == [i * i for i in range(40)]


@pytest.mark.parametrize(("item", "code", "text"), [("bad", ExitCode.BAD_INPUT, "a bad item"),
                                                    ("bug", ExitCode.ERROR, "ZeroDivisionError: division by zero"),
                                                    ("die", 7, "ended with status 7")])
def test_a_failure_is_one_error_naming_the_worker_with_its_exit_code(item, code, text):
    with pytest.raises(WorkerFailed) as caught:
        list(run_tasks(_square, [1, 3, item, 5], 1, setup=_offset, setup_args=(0,), name="a2d-test worker"))
    assert caught.value.exit_code == code
    assert str(caught.value).startswith("a2d-test worker 1 of 1 (pid ")
    assert text in str(caught.value)


def test_stream_workers_get_what_is_sent_to_them_and_answer_in_messages():
    heard = []
    with Pool(_echo_pids, 2, args=("t",), on_message=lambda worker, message: heard.append((worker, message))) as pool:
        for i in range(6):
            pool.send_to(i % 2, i)
    pool.check()
    assert sorted(message[1] for _, message in heard) == list(range(6))
    for worker, (tag, item, pid) in heard:
        assert tag == "t" and item % 2 == worker and pid == pool.processes[worker].pid != os.getpid()
    assert [process.returncode for process in pool.processes] == [0, 0]


def test_no_input_starts_no_process():
    with Pool(_echo_pids, 3, args=("t",)) as pool:
        pass
    assert pool.processes == [] and list(run_tasks(_square, [], 2)) == []
