"""Checking the arguments of :meth:`Accelerator.transcribe` and
:meth:`Accelerator.classify` before the native layer runs them: a wrong type
raises ``TypeError``, an unusable value
:class:`~ipfs_accelerate.errors.InvalidInputError`."""

import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .errors import InvalidInputError

#: The keys of the dict :meth:`Accelerator.transcribe` returns.
TRANSCRIPT_KEYS = ("text", "language", "duration", "segments", "backend")

_BYTES = (bytes, bytearray, memoryview)


def audio_arguments(audio: Any) -> Dict[str, Any]:
    """The native ``path``/``data``/``samples`` argument for ``audio``: a
    path, the bytes of an audio file, or 16 kHz mono samples (a 1-D
    sequence or array of floats, sent as float32 bytes)."""
    if isinstance(audio, (str, os.PathLike)):
        path = os.fspath(audio)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            raise InvalidInputError("audio is an empty path: pass an audio file, its bytes or 16 kHz samples")
        return {"path": path}
    if isinstance(audio, _BYTES):
        data = bytes(audio)
        if not data:
            raise InvalidInputError("audio is empty bytes: pass the content of a WAV, MP3, FLAC or Ogg file")
        return {"data": data}
    if isinstance(audio, (np.ndarray, Sequence)):
        try:
            samples = np.asarray(audio, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise TypeError(f"audio samples must be numbers ({e})") from None
        if samples.ndim != 1:
            raise InvalidInputError(
                f"audio samples must be one-dimensional (mono, 16 kHz), not of shape {tuple(samples.shape)}"
            )
        if samples.size == 0:
            raise InvalidInputError("audio holds no samples: there is nothing to transcribe")
        if not np.all(np.isfinite(samples)):
            raise InvalidInputError("audio samples hold NaN or infinite values")
        return {"samples": samples.astype("<f4").tobytes()}
    raise TypeError(
        "audio must be a path (str or os.PathLike), the bytes of an audio file, or a 1-D sequence of 16 kHz "
        f"float samples, not {type(audio).__name__}"
    )


def _image(i: int, image: Any) -> Union[str, bytes]:
    if isinstance(image, _BYTES):
        data = bytes(image)
        if not data:
            raise InvalidInputError(f"images[{i}] is empty bytes: pass the content of an image file")
        return data
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        return os.fsdecode(path) if isinstance(path, bytes) else path
    raise TypeError(f"images[{i}] must be a path (str or os.PathLike) or bytes, not {type(image).__name__}")


def image_list(images: Any) -> List[Union[str, bytes]]:
    """``images`` (one image or a list of them) as a list of paths (str)
    and image-file bytes."""
    if isinstance(images, (str, os.PathLike) + _BYTES):
        images = [images]
    if not isinstance(images, Sequence):
        raise TypeError(f"images must be a path, bytes, or a list of them, not {type(images).__name__}")
    if not images:
        raise InvalidInputError("images is empty: pass at least one image")
    return [_image(i, image) for i, image in enumerate(images)]


def label_list(labels: Any) -> Optional[List[str]]:
    """``labels`` (None, a str, or a list of str) as a list of str."""
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, Sequence):
        raise TypeError(f"labels must be a list of str or None, not {type(labels).__name__}")
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise TypeError(f"labels[{i}] must be a str, not {type(label).__name__}")
    if not any(label.strip() for label in labels):
        raise InvalidInputError("labels is empty: pass at least one candidate label")
    return list(labels)
