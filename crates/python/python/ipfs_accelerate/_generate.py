"""Checking the arguments of :meth:`Accelerator.generate` before the native
layer runs it: a wrong type raises ``TypeError``, an unusable value
:class:`~ipfs_accelerate.errors.InvalidInputError`."""

import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import InvalidInputError

#: The keys of the dict :meth:`Accelerator.generate` returns.
RESULT_KEYS = (
    "text",
    "token_ids",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "tokens_per_second",
    "prefill_tokens_per_second",
    "decode_tokens_per_second",
)

#: Above any context length or vocabulary size.
_INT_CAP = 1 << 32


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(name: str, value: Any, minimum: int) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidInputError(f"{name} must be {minimum} or more, not {value}")
    return value


def _number(name: str, value: Any) -> float:
    if not _is_number(value):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, not {value}")
    return value


def _messages(messages: Any) -> List[Tuple[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f'messages must be a list of {{"role": ..., "content": ...}} dicts, not {type(messages).__name__}')
    if not messages:
        raise InvalidInputError("messages is empty: pass at least one message")
    pairs = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f'messages[{i}] must be a dict with "role" and "content", not {type(message).__name__}')
        for key in ("role", "content"):
            if key not in message:
                raise InvalidInputError(f'messages[{i}] has no "{key}"')
            if not isinstance(message[key], str):
                raise TypeError(f'messages[{i}]["{key}"] must be a str, not {type(message[key]).__name__}')
        pairs.append((message["role"], message["content"]))
    return pairs


def _stop(stop: Any) -> List[str]:
    if stop is None:
        return []
    strings = [stop] if isinstance(stop, str) else stop
    if not isinstance(strings, (list, tuple)) or not all(isinstance(s, str) for s in strings):
        raise TypeError(f"stop must be a str, a list of str or None, not {type(stop).__name__}")
    if any(s == "" for s in strings):
        raise InvalidInputError("stop strings must not be empty")
    return list(strings)


def native_arguments(
    prompt: Any,
    messages: Any,
    max_tokens: Any,
    temperature: Any,
    top_p: Any,
    top_k: Any,
    repetition_penalty: Any,
    seed: Any,
    greedy: Any,
    stop: Any,
    on_text: Optional[Callable[[str], Any]],
) -> Dict[str, Any]:
    """The keyword arguments of ``NativeAccelerator.generate`` for these
    arguments of :meth:`Accelerator.generate`, checked."""
    if (prompt is None) == (messages is None):
        raise InvalidInputError("pass either prompt (text to continue) or messages (a conversation), not both or neither")
    if prompt is not None and not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
    pairs: Optional[List[Tuple[str, str]]] = _messages(messages) if messages is not None else None
    if not isinstance(greedy, bool):
        raise TypeError(f"greedy must be a bool, not {type(greedy).__name__}")
    max_tokens = _int("max_tokens", max_tokens, 1)
    top_k = _int("top_k", top_k, 0)
    temperature = _number("temperature", temperature)
    if temperature < 0:
        raise InvalidInputError(f"temperature must be 0 (greedy) or positive, not {temperature}")
    top_p = _number("top_p", top_p)
    if not 0 < top_p <= 1:
        raise InvalidInputError(f"top_p must be in (0, 1], not {top_p}")
    repetition_penalty = _number("repetition_penalty", repetition_penalty)
    if repetition_penalty <= 0:
        raise InvalidInputError(f"repetition_penalty must be positive (1.0 = off), not {repetition_penalty}")
    if seed is not None:
        seed = _int("seed", seed, 0)
        if seed >= 1 << 64:
            raise InvalidInputError(f"seed must be below 2**64, not {seed}")
    if on_text is not None and not callable(on_text):
        raise TypeError(f"on_text must be a callable or None, not {type(on_text).__name__}")
    # Both are bounded by the model anyway (its context, its vocabulary);
    # clipping keeps huge values from overflowing the native integers.
    max_tokens, top_k = min(max_tokens, _INT_CAP), min(top_k, _INT_CAP)
    return {
        "prompt": prompt,
        "messages": pairs,
        "max_tokens": max_tokens,
        # Greedy: the most likely token every step (top_k and top_p then change nothing).
        "temperature": 0.0 if greedy else temperature,
        "top_p": top_p,
        "top_k": top_k,
        "repetition_penalty": repetition_penalty,
        "seed": seed,
        "stop": _stop(stop),
        "on_text": on_text,
    }


__all__ = ["RESULT_KEYS", "native_arguments"]
