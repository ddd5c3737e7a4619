"""Text generation: SmolLM2-135M-Instruct (Q4_1 GGUF) gives the known
greedy answers, streams its text, cancels, reproduces seeds, and bad
arguments raise the right exceptions."""

import _thread
import asyncio
import threading
import time

import pytest

import ipfs_accelerate
from ipfs_accelerate import InvalidInputError, ModelNotFoundError, UnsupportedModelTypeError
from ipfs_accelerate._generate import RESULT_KEYS

CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def test_greedy_chat_answer(acc, generation_model):
    r = acc.generate(generation_model, messages=CAPITAL, greedy=True, max_tokens=32)
    assert sorted(r) == sorted(RESULT_KEYS)
    assert r["text"] == "The capital of France is Paris."
    assert r["token_ids"] == [504, 3575, 282, 4649, 314, 7042, 30]
    assert r["prompt_tokens"] == 37
    assert r["completion_tokens"] == 7
    assert r["finish_reason"] == "stop"
    for key in ("tokens_per_second", "prefill_tokens_per_second", "decode_tokens_per_second"):
        assert isinstance(r[key], float) and r[key] > 0, key


def test_greedy_plain_prompt_reaches_max_tokens(acc, generation_model):
    r = acc.generate(generation_model, "The capital of France is", greedy=True, max_tokens=5)
    assert r["text"] == " Paris.\n\nThe"
    assert r["completion_tokens"] == 5 and len(r["token_ids"]) == 5
    assert r["finish_reason"] == "length"


def test_pathlike_model_and_temperature_zero_are_greedy(acc, generation_model):
    from pathlib import Path

    r = acc.generate(Path(generation_model), "The capital of France is", temperature=0, max_tokens=5)
    assert r["text"] == " Paris.\n\nThe"
    # Huge counts are clipped by the model (context, vocabulary), not an overflow.
    r = acc.generate(generation_model, messages=CAPITAL, greedy=True, max_tokens=10**30, top_k=10**30)
    assert r["text"] == "The capital of France is Paris."


def test_stop_string_ends_the_text_before_it(acc, generation_model):
    r = acc.generate(generation_model, "The capital of France is", greedy=True, max_tokens=5, stop="\n")
    assert r["text"] == " Paris."
    assert r["finish_reason"] == "stop"


def test_on_text_pieces_make_the_text(acc, generation_model):
    pieces = []
    r = acc.generate(generation_model, messages=CAPITAL, greedy=True, on_text=pieces.append)
    assert len(pieces) > 1
    assert "".join(pieces) == r["text"] == "The capital of France is Paris."


def test_on_text_returning_false_cancels(acc, generation_model):
    pieces = []

    def three(piece):
        pieces.append(piece)
        return len(pieces) < 3

    r = acc.generate(generation_model, "Once upon a time", greedy=True, max_tokens=50, on_text=three)
    assert r["finish_reason"] == "cancelled"
    assert len(pieces) == 3 and r["text"] == "".join(pieces)
    assert r["completion_tokens"] < 50


def test_on_text_raising_cancels_and_reraises(acc, generation_model):
    seen = []

    def boom(piece):
        seen.append(piece)
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        acc.generate(generation_model, "Once upon a time", max_tokens=50, on_text=boom)
    assert len(seen) == 1


def test_a_seed_reproduces_a_sampled_generation(acc, generation_model):
    kwargs = dict(max_tokens=24, temperature=1.0, top_k=0, top_p=1.0)
    a = acc.generate(generation_model, "Once upon a time", seed=1234, **kwargs)
    b = acc.generate(generation_model, "Once upon a time", seed=1234, **kwargs)
    assert a["token_ids"] == b["token_ids"] and a["text"] == b["text"]
    others = [acc.generate(generation_model, "Once upon a time", seed=s, **kwargs)["token_ids"] for s in (1, 2, 3)]
    assert any(o != a["token_ids"] for o in others)


def test_generate_async(acc, generation_model):
    r = asyncio.run(acc.generate_async(generation_model, "The capital of France is", greedy=True, max_tokens=5))
    assert r["text"] == " Paris.\n\nThe"


def test_gil_is_released_and_ctrl_c_interrupts(acc, generation_model, python_sigint):
    acc.generate(generation_model, "warm up", max_tokens=1)
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=count)
    t.start()
    timer = threading.Timer(0.5, _thread.interrupt_main)
    try:
        started = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            # A story may end early (end of sequence): keep generating until interrupted.
            while time.monotonic() - started < 20:
                acc.generate(generation_model, "Once upon a time", max_tokens=2000, seed=7)
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
        stop.set()
        t.join()
    assert elapsed < 3.0
    # The Python thread kept running while Rust computed.
    assert len(ticks) > elapsed / 0.01 * 0.3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt="x", temperature=-1), "temperature"),
        (dict(prompt="x", top_p=0), "top_p"),
        (dict(prompt="x", top_p=1.5), "top_p"),
        (dict(prompt="x", max_tokens=0), "max_tokens"),
        (dict(prompt="x", top_k=-1), "top_k"),
        (dict(prompt="x", repetition_penalty=0), "repetition_penalty"),
        (dict(prompt="x", seed=-1), "seed"),
        (dict(prompt="x", temperature=float("nan")), "temperature"),
        (dict(prompt="x", stop=[""]), "stop"),
        (dict(), "either prompt .* or messages"),
        (dict(prompt="x", messages=CAPITAL), "either prompt .* or messages"),
        (dict(messages=[]), "empty"),
        (dict(messages=[{"role": "user"}]), "content"),
    ],
)
def test_bad_values_raise_invalid_input(acc, generation_model, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        acc.generate(generation_model, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(prompt=42),
        dict(prompt=["a"]),
        dict(prompt="x", max_tokens="5"),
        dict(prompt="x", max_tokens=5.0),
        dict(prompt="x", temperature="hot"),
        dict(prompt="x", top_k=True),
        dict(prompt="x", seed="1"),
        dict(prompt="x", greedy=1),
        dict(prompt="x", stop=5),
        dict(prompt="x", on_text="print"),
        dict(messages="hello"),
        dict(messages=[("user", "hi")]),
        dict(messages=[{"role": "user", "content": 3}]),
    ],
)
def test_wrong_types_raise_type_error(acc, generation_model, kwargs):
    with pytest.raises(TypeError):
        acc.generate(generation_model, **kwargs)


def test_missing_models(acc, tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        acc.generate(str(tmp_path / "nothing.gguf"), "x")
    with pytest.raises(ModelNotFoundError, match="no model"):
        acc.generate("no-such-model-anywhere", "x")
    with pytest.raises(ModelNotFoundError):
        acc.generate(str(tmp_path), "x")  # an empty directory
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelNotFoundError, match="not a .gguf"):
        acc.generate(str(text), "x")
    with pytest.raises(TypeError):
        acc.generate(42, "x")


def test_an_embedding_model_is_not_a_generation_model(acc, model_dir):
    with pytest.raises(UnsupportedModelTypeError, match="text-embedding model"):
        acc.generate(model_dir, "The capital of France is")


def test_closed_accelerator_refuses_generate(data_dir, generation_model):
    a = ipfs_accelerate.get_accelerator(db_path=str(data_dir / "j.sqlite3"))
    a.close()
    with pytest.raises(ipfs_accelerate.AcceleratorClosedError):
        a.generate(generation_model, "x", max_tokens=1)
