"""Long work runs without the GIL and Ctrl-C interrupts it."""

import _thread
import threading
import time

import pytest

TEXTS = [f"sentence number {i} about content-addressed model weights and browsers" for i in range(4000)]


def test_gil_is_released_during_inference(acc, model_dir):
    acc.embed(model_dir, "warm up")
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=count)
    t.start()
    try:
        started = time.monotonic()
        acc.embed(model_dir, TEXTS[:300])
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        t.join()
    # The Python thread kept running while Rust computed.
    assert elapsed > 0.2 and len(ticks) > elapsed / 0.01 * 0.3


def test_ctrl_c_interrupts_a_long_call(acc, model_dir, python_sigint):
    acc.embed(model_dir, "warm up")
    # Twice: a batch that answers quickly must not hide the signal either.
    for _ in range(2):
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            acc.embed(model_dir, TEXTS)  # several seconds on 2 cores
        assert time.monotonic() - started < 3.0
        timer.cancel()
