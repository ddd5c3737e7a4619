"""Exception classes raised by ``ipfs_accelerate``.

Every error the package raises on purpose derives from
:class:`IpfsAccelerateError`, and also from the built-in exception a Python
user would expect (``ValueError`` for a bad value, ``FileNotFoundError`` for
a missing model, ...), so ``except ValueError`` keeps working.
"""


class IpfsAccelerateError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(IpfsAccelerateError, ValueError):
    """An argument has a usable type but an unusable value (an unknown
    platform or browser, an empty input list, a bad precision)."""


class ModelNotFoundError(IpfsAccelerateError, FileNotFoundError):
    """The model is neither a directory, nor a name in the local model
    registry, nor a CID whose blocks are all in the local block store."""


class BackendUnavailableError(IpfsAccelerateError, RuntimeError):
    """The platform or browser asked for cannot run here (not installed, no
    WebGPU/WebNN in that browser, too many browser connections)."""


class UnsupportedModelTypeError(IpfsAccelerateError, NotImplementedError):
    """The model family asked for has no implementation in this version, or
    the model given is not of the family the call runs (an embedding model
    given to ``generate``, ``transcribe`` or ``classify``, an architecture
    that has no implementation). Text embedding, text generation, Whisper
    speech recognition and image classification (ViT, EfficientNet-Lite,
    CLIP) models run."""


class AcceleratorClosedError(IpfsAccelerateError, RuntimeError):
    """The accelerator or browser bridge was closed; make a new one."""


class InferenceError(IpfsAccelerateError, RuntimeError):
    """The workers failed to run the request (every try's error is quoted)."""


__all__ = [
    "IpfsAccelerateError",
    "InvalidInputError",
    "ModelNotFoundError",
    "BackendUnavailableError",
    "UnsupportedModelTypeError",
    "AcceleratorClosedError",
    "InferenceError",
]
