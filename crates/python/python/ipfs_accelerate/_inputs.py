"""Checking and normalizing the ``inputs`` and ``model_type`` arguments."""

from typing import Any, List, Optional, Tuple

from .errors import InvalidInputError, UnsupportedModelTypeError

#: The model type every model in this version has.
TEXT_EMBEDDING = "text_embedding"

#: Spellings of the text-embedding type accepted for ``model_type``.
_EMBEDDING_ALIASES = {
    "text_embedding",
    "text-embedding",
    "embedding",
    "embeddings",
    "feature-extraction",
    "feature_extraction",
    "sentence-similarity",
    "text",
}


#: Spellings of the text-generation type, which ``generate`` runs.
_GENERATION_ALIASES = {"text_generation", "text-generation", "generation", "causal_lm", "causal-lm", "llm"}


def check_model_type(model_type: Optional[str]) -> str:
    """Returns the model type to run, or raises for families that do not
    exist in this version (speech, vision) or that another method runs
    (generation: :meth:`Accelerator.generate`)."""
    if model_type is None:
        return TEXT_EMBEDDING
    if not isinstance(model_type, str):
        raise TypeError(f"model_type must be a str or None, not {type(model_type).__name__}")
    if model_type.lower() in _EMBEDDING_ALIASES:
        return TEXT_EMBEDDING
    if model_type.lower() in _GENERATION_ALIASES:
        raise UnsupportedModelTypeError(
            f"model_type {model_type!r}: accelerate_with_browser runs text embedding models only; "
            "generate text with Accelerator.generate()"
        )
    raise UnsupportedModelTypeError(
        f"model_type {model_type!r}: no such model family exists in this version; "
        "accelerate_with_browser runs text embedding models (model_type='text_embedding')"
    )


def _is_int(value: Any) -> bool:
    # bool is a subclass of int but never a token id.
    return isinstance(value, int) and not isinstance(value, bool)


def _token_rows(value: Any) -> Optional[List[List[int]]]:
    """Token ids as rows, or None when ``value`` is not token ids."""
    if isinstance(value, (list, tuple)) and value and all(_is_int(v) for v in value):
        return [list(value)]
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(row, (list, tuple)) and row and all(_is_int(v) for v in row) for row in value)
    ):
        return [list(row) for row in value]
    return None


def normalize(inputs: Any) -> Tuple[Optional[List[str]], Optional[List[List[int]]]]:
    """Splits ``inputs`` into texts or token-id rows (exactly one is set).

    Accepted: a str; a list/tuple of str; token ids as a list of ints or a
    list of lists of ints; a dict with ``"input_ids"`` (as in the
    predecessor's examples) or ``"text"``/``"texts"``.
    """
    if isinstance(inputs, dict):
        if "input_ids" in inputs:
            rows = _token_rows(inputs["input_ids"])
            if rows is None:
                raise TypeError("inputs['input_ids'] must be a list of ints or a list of lists of ints")
            return None, rows
        for key in ("text", "texts"):
            if key in inputs:
                return normalize(inputs[key])
        raise InvalidInputError("a dict input needs an 'input_ids', 'text' or 'texts' key")
    if isinstance(inputs, str):
        return [inputs], None
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise InvalidInputError("inputs is empty: pass at least one text")
        if all(isinstance(t, str) for t in inputs):
            return list(inputs), None
        rows = _token_rows(inputs)
        if rows is not None:
            for row in rows:
                if any(v < 0 for v in row):
                    raise InvalidInputError("token ids must be non-negative")
            return None, rows
    raise TypeError(
        "inputs must be a str, a list of str, token ids (a list of ints or a list of lists of ints), "
        f"or a dict with 'input_ids'; got {type(inputs).__name__}"
    )
