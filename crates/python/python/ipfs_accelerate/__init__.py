"""ipfs_accelerate: transformer inference on the CPU and in real browsers
(WebGPU, WebNN), with content-addressed model weights: text embeddings, and
on the CPU text generation (``Accelerator.generate``), speech recognition
with Whisper (``Accelerator.transcribe``) and image classification
(``Accelerator.classify``).

Every number returned is measured; ``is_simulation`` is always False.
Embedding calls are recorded in the SQLite results database (``Accelerator.db_path``).

>>> import ipfs_accelerate
>>> with ipfs_accelerate.get_accelerator() as acc:
...     vectors = acc.embed("path/to/all-MiniLM-L6-v2", ["hello", "world"])
...     answer = acc.generate("path/to/model.gguf", messages=[{"role": "user", "content": "Hi"}])
...     transcript = acc.transcribe("path/to/whisper-tiny.en", "speech.wav")["text"]
...     top5 = acc.classify("path/to/vit-base-patch16-224", ["cat.jpg"])[0]
"""

from ._native import __version__
from ._accelerator import Accelerator, accelerate_with_browser, get_accelerator
from ._bridge import BrowserBridge, create_browser_bridge
from . import errors
from .errors import (
    AcceleratorClosedError,
    BackendUnavailableError,
    InferenceError,
    InvalidInputError,
    IpfsAccelerateError,
    ModelNotFoundError,
    UnsupportedModelTypeError,
)

__all__ = [
    "__version__",
    "Accelerator",
    "get_accelerator",
    "accelerate_with_browser",
    "BrowserBridge",
    "create_browser_bridge",
    # The exception classes, as errors.py lists them.
    *errors.__all__,
]
