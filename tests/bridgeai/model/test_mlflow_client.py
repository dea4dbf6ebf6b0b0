"""``mlflow_client.fluent``: MLflow's process-global tracking URI, shared safely between threads."""

from __future__ import annotations

import threading

import mlflow

from bridgeai.model.mlflow_client import fluent

A = "http://127.0.0.1:1/a"
B = "http://127.0.0.1:1/b"


def test_the_uri_is_restored_only_when_the_last_thread_leaves() -> None:
    """Two trainings in one process: the first to finish must not unpoint the other's run."""
    before = mlflow.get_tracking_uri()
    inside, first_left, seen = threading.Event(), threading.Event(), []

    def second() -> None:
        with fluent(A):
            inside.set()
            first_left.wait(30)
            seen.append(mlflow.get_tracking_uri())

    with fluent(A):
        thread = threading.Thread(target=second)
        thread.start()
        assert inside.wait(30)
    first_left.set()
    thread.join(30)
    assert seen == [A]  # still pointed at A after the first thread left
    assert mlflow.get_tracking_uri() == before


def test_another_uri_waits_until_the_first_is_left() -> None:
    order: list[str] = []
    entered = threading.Event()

    def other() -> None:
        with fluent(B):
            order.append(f"b sees {mlflow.get_tracking_uri()}")

    with fluent(A):
        thread = threading.Thread(target=lambda: (entered.set(), other()))
        thread.start()
        assert entered.wait(30)
        thread.join(1)  # it cannot get in while A is pointed at
        order.append(f"a sees {mlflow.get_tracking_uri()}")
    thread.join(30)
    assert order == [f"a sees {A}", f"b sees {B}"]


def test_one_thread_may_nest_another_uri() -> None:
    with fluent(A):
        with fluent(B):
            assert mlflow.get_tracking_uri() == B
        assert mlflow.get_tracking_uri() == A
