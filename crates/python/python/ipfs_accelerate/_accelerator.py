"""The :class:`Accelerator` and the module-level ``accelerate_with_browser``."""

import asyncio
import atexit
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _native
from ._generate import native_arguments
from ._inputs import TEXT_EMBEDDING, check_model_type, normalize
from ._media import audio_arguments, image_list, label_list
from .errors import InvalidInputError

#: The worker kinds of the pool and the platform name each reports.
_PLATFORM_OF_KIND = {
    "native-cpu": "cpu",
    "native-wgpu": "webgpu-native",
    "browser-webgpu": "webgpu",
    "browser-webnn": "webnn",
    "remote": "remote",
}

#: Precisions the predecessor accepted; every worker here runs float32.
_PRECISIONS = (4, 8, 16, 32)


def _check_str(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        kind = "a str or None" if optional else "a str"
        raise TypeError(f"{name} must be {kind}, not {type(value).__name__}")


def _model_arg(model: Any) -> str:
    if isinstance(model, os.PathLike):
        return os.fspath(model)
    _check_str("model_name", model)
    return model


def _array(raw: Dict[str, Any]) -> np.ndarray:
    """The embeddings the native layer measured, as float32 [n, dim]."""
    return np.frombuffer(raw["data"], dtype="<f4").reshape(raw["n"], raw["dim"]).astype(np.float32)


class Accelerator:
    """Runs models through the resource pool and records every call in the
    SQLite results database (the pool's journal, :attr:`db_path`).

    Workers: the native CPU backend, and browser pages (WebGPU or WebNN)
    launched on demand, one per (platform, browser), at most
    ``max_connections`` of them. Use it as a context manager, or call
    :meth:`close`; a closed accelerator raises
    :class:`~ipfs_accelerate.errors.AcceleratorClosedError`.
    """

    def __init__(
        self,
        db_path: Optional[Union[str, "os.PathLike[str]"]] = None,
        max_connections: int = 4,
        headless: bool = True,
        enable_ipfs: bool = True,
    ) -> None:
        if db_path is not None and not isinstance(db_path, (str, os.PathLike)):
            raise TypeError(f"db_path must be a str, a path or None, not {type(db_path).__name__}")
        if not isinstance(max_connections, int) or isinstance(max_connections, bool):
            raise TypeError(f"max_connections must be an int, not {type(max_connections).__name__}")
        if max_connections < 0:
            raise InvalidInputError(f"max_connections must be 0 or more, not {max_connections}")
        path = os.fspath(db_path) if db_path is not None else None
        self._native = _native.NativeAccelerator(path, max_connections, bool(headless), bool(enable_ipfs))

    @property
    def db_path(self) -> str:
        """Path of the SQLite results database (tables ``requests``,
        ``inferences``, ``workers``, ``placements``, ``latency``)."""
        return self._native.db_path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    def _texts(self, model: str, inputs: Any) -> "tuple[List[str], List[str]]":
        """The texts to embed, and notes on how they were obtained."""
        texts, rows = normalize(inputs)
        if rows is None:
            return texts, []
        decoded = self._native.decode(model, rows)
        note = (
            "token ids were decoded with the model's tokenizer (special tokens dropped) and the text embedded; "
            "the pool takes text"
        )
        return decoded, [note]

    def _run(self, model: str, texts: List[str], platform: str, browser: Optional[str]) -> Dict[str, Any]:
        return self._native.embed(model, texts, platform, browser)

    def embed(
        self,
        model: Union[str, "os.PathLike[str]"],
        texts: Union[str, List[str]],
        platform: str = "cpu",
        browser: Optional[str] = None,
    ) -> np.ndarray:
        """Embeds ``texts`` with ``model`` and returns a float32
        ``numpy.ndarray`` of shape ``[len(texts), dim]`` (one row for a
        single str).

        ``model``: a model directory, a name from ``ipfs-accelerate models
        ls``, or a CID in the local block store. ``platform``: ``"cpu"``,
        ``"auto"`` (the CPU), ``"webgpu"`` or ``"webnn"`` (a browser page).
        The GIL is released while the workers run; Ctrl-C interrupts.
        """
        name = _model_arg(model)
        _check_str("platform", platform)
        _check_str("browser", browser, optional=True)
        texts_list, _ = self._texts(name, texts)
        return _array(self._run(name, texts_list, platform, browser))

    def accelerate_with_browser(
        self,
        model_name: Union[str, "os.PathLike[str]"],
        inputs: Any,
        model_type: Optional[str] = None,
        platform: str = "webgpu",
        browser: Optional[str] = None,
        precision: int = 16,
        mixed_precision: bool = False,
        compute_shaders: Optional[bool] = None,
        precompile_shaders: bool = True,
        parallel_loading: Optional[bool] = None,
        use_real_browser: bool = True,
    ) -> Dict[str, Any]:
        """Runs ``inputs`` through ``model_name`` and returns a dict of
        measured results.

        Keys: ``status`` ("success"), ``model_name``, ``model_type``
        ("text_embedding"), ``platform`` (where it actually ran: "webgpu",
        "webnn" or "cpu"), ``browser`` (the browser and version that ran it;
        None on the CPU), ``precision`` (the precision actually used: 32,
        every worker runs float32; a request for less adds a note),
        ``inference_time`` (seconds, wall clock of the whole call: queueing,
        tokenization, inference, a browser's start and model load on first
        use), ``latency_ms`` (the same in ms), ``worker_time_ms`` (time on
        the worker only), ``throughput_items_per_sec`` (inputs / wall time),
        ``memory_usage_mb`` (peak resident memory of this Python process,
        VmHWM from /proc/self/status; a browser's own processes are not
        included; None where /proc is missing), ``memory_delta_mb``
        (VmRSS after minus before the call), ``cid`` and ``ipfs_cache_hit``
        (the model's root CID when it came from the local block store, and
        True when every block was already local — nothing is ever fetched
        here), ``output`` (float32 ``numpy.ndarray`` ``[n, dim]``),
        ``db_path``, ``model_dir``, ``worker``, ``notes`` (a list of str)
        and ``is_simulation`` (always False).

        ``inputs``: a str, a list of str, token ids (a list of ints, a list
        of lists, or ``{"input_ids": [...]}``; decoded with the model's
        tokenizer, then embedded). ``platform``: "webgpu", "webnn", "cpu" or
        "auto" (the CPU). ``browser``: "chrome", "chromium", "edge",
        "firefox" or a binary path; None or "chrome" take the first Chrome,
        Chromium or Edge installed. ``use_real_browser=False`` runs on the
        CPU and reports platform "cpu" (nothing is ever simulated).
        ``mixed_precision``, ``compute_shaders``, ``precompile_shaders`` and
        ``parallel_loading`` are accepted for compatibility and change
        nothing (a note says so when set).
        """
        name = _model_arg(model_name)
        kind = check_model_type(model_type)
        _check_str("platform", platform)
        _check_str("browser", browser, optional=True)
        if not isinstance(precision, int) or isinstance(precision, bool):
            raise TypeError(f"precision must be an int, not {type(precision).__name__}")
        if precision not in _PRECISIONS:
            raise InvalidInputError(f"precision must be one of {_PRECISIONS}, not {precision}")
        texts, notes = self._texts(name, inputs)
        run_platform = platform
        if not use_real_browser:
            run_platform = "cpu"
            notes.append("use_real_browser=False: ran on the native CPU backend (nothing is simulated)")
        raw = self._run(name, texts, run_platform, browser)
        used_precision = 32 if raw["precision"] == "f32" else 16
        if precision != used_precision:
            notes.append(f"precision {precision} was asked for; the workers run float{used_precision}, reported here")
        ignored = [
            n
            for n, v in (
                ("mixed_precision", mixed_precision),
                ("compute_shaders", compute_shaders),
                ("parallel_loading", parallel_loading),
            )
            if v
        ]
        if ignored:
            notes.append(f"{', '.join(ignored)}: accepted for compatibility; no effect in this version")
        wall = raw["wall_s"]
        mib = float(1 << 20)
        peak, before, after = raw["peak_rss"], raw["rss_before"], raw["rss_after"]
        return {
            "status": "success",
            "model_name": name,
            "model_type": kind,
            "platform": _PLATFORM_OF_KIND.get(raw["worker_kind"], raw["worker_kind"]),
            "browser": raw["browser"],
            "precision": used_precision,
            "inference_time": wall,
            "latency_ms": wall * 1000.0,
            "worker_time_ms": raw["worker_time_s"] * 1000.0,
            "throughput_items_per_sec": raw["n"] / wall if wall > 0 else None,
            "memory_usage_mb": peak / mib if peak is not None else None,
            "memory_delta_mb": (after - before) / mib if after is not None and before is not None else None,
            "cid": raw["cid"],
            "ipfs_cache_hit": raw["ipfs_cache_hit"],
            "output": _array(raw),
            "worker": raw["worker"],
            "model_dir": raw["model_dir"],
            "db_path": self.db_path,
            "notes": notes,
            "is_simulation": False,
        }

    async def accelerate_with_browser_async(self, model_name: Any, inputs: Any, **kwargs: Any) -> Dict[str, Any]:
        """:meth:`accelerate_with_browser` on a worker thread, awaitable."""
        return await asyncio.to_thread(self.accelerate_with_browser, model_name, inputs, **kwargs)

    async def embed_async(self, model: Any, texts: Any, **kwargs: Any) -> np.ndarray:
        """:meth:`embed` on a worker thread, awaitable."""
        return await asyncio.to_thread(self.embed, model, texts, **kwargs)

    def generate(
        self,
        model: Union[str, "os.PathLike[str]"],
        prompt: Optional[str] = None,
        *,
        messages: Optional[List[Dict[str, str]]] = None,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_p: float = 0.95,
        top_k: int = 40,
        repetition_penalty: float = 1.0,
        seed: Optional[int] = None,
        greedy: bool = False,
        stop: Optional[Union[str, List[str]]] = None,
        on_text: Optional[Callable[[str], Any]] = None,
    ) -> Dict[str, Any]:
        """Generates text with a decoder-only language model on the CPU and
        returns a dict of the result and its measured speed.

        ``model``: a ``.gguf`` file, or a directory holding one ``.gguf``
        file or a Hugging Face model (``config.json``, ``model.safetensors``,
        ``tokenizer.json``; llama, mistral, qwen2 or gpt2), or a name or CID
        of such a directory in the local model store. Each model is loaded
        once per accelerator and kept. Pass either ``prompt`` (text to
        continue) or ``messages`` (a list of ``{"role": ..., "content":
        ...}`` dicts, rendered with the model's chat template and an
        assistant turn opened).

        ``max_tokens``: most new tokens. ``temperature`` (0 = greedy),
        ``top_k`` (0 = all), ``top_p`` (1.0 = all), ``repetition_penalty``
        (1.0 = off) and ``seed`` (the same seed reproduces a generation;
        None: random) choose each token; ``greedy=True`` always takes the
        most likely one. ``stop``: a str or list of str that ends the
        generation (the text stops before it). ``on_text``: called with each
        piece of text as it is generated (never half a character); returning
        ``False`` cancels, raising cancels and re-raises.

        Keys: ``text``, ``token_ids`` (the new tokens), ``prompt_tokens``,
        ``completion_tokens``, ``finish_reason`` (``"length"``: max_tokens
        or the context reached; ``"stop"``: end of sequence or a stop
        string; ``"cancelled"``: ``on_text`` returned False),
        ``tokens_per_second`` (new tokens over the whole call),
        ``prefill_tokens_per_second`` (prompt tokens over the prompt's
        forward pass) and ``decode_tokens_per_second`` (tokens after the
        first over their steps). The GIL is released while tokens are
        computed; Ctrl-C interrupts (KeyboardInterrupt).

        Raises :class:`~ipfs_accelerate.errors.InvalidInputError` for
        unusable values, ``TypeError`` for wrong types,
        :class:`~ipfs_accelerate.errors.ModelNotFoundError` for a missing
        model and :class:`~ipfs_accelerate.errors.UnsupportedModelTypeError`
        for a model that is not a text-generation model.
        """
        name = _model_arg(model)
        arguments = native_arguments(
            prompt, messages, max_tokens, temperature, top_p, top_k, repetition_penalty, seed, greedy, stop, on_text
        )
        return self._native.generate(name, **arguments)

    async def generate_async(self, model: Any, prompt: Optional[str] = None, **kwargs: Any) -> Dict[str, Any]:
        """:meth:`generate` on a worker thread, awaitable (``on_text`` is
        called on that thread)."""
        return await asyncio.to_thread(self.generate, model, prompt, **kwargs)

    def transcribe(
        self,
        model: Union[str, "os.PathLike[str]"],
        audio: Union[str, "os.PathLike[str]", bytes, Sequence[float], np.ndarray],
        *,
        timestamps: bool = False,
        language: Optional[str] = None,
        translate: bool = False,
    ) -> Dict[str, Any]:
        """Transcribes speech with a Whisper model on the CPU and returns a
        dict of the transcript.

        ``model``: a Hugging Face Whisper directory (``config.json``,
        ``generation_config.json``, ``tokenizer.json``,
        ``model.safetensors``; e.g. whisper-tiny.en), or a name or CID of one
        in the local model store (as for :meth:`embed`). Each model is
        loaded once per accelerator and kept. ``audio``: the path of a WAV,
        MP3, FLAC or Ogg Vorbis file (any rate and channel count; the content
        decides, not the extension), the bytes of such a file, or 16 kHz mono
        samples (a 1-D sequence or ``numpy`` array of floats). Clips up to
        30 minutes; those over 30 s are transcribed in 30 s windows, with
        timestamps.

        ``timestamps``: segment start and end times (else one segment spans
        the clip). ``language``: the spoken language's code (``"en"``,
        ``"fr"``, ...) for multilingual models (None: detected from the first
        30 s); English-only models accept only ``"en"``. ``translate``:
        English text from speech in another language (multilingual models
        only).

        Keys: ``text`` (the whole transcript, with Whisper's leading
        space), ``language`` (the code used or detected), ``duration``
        (the clip's length, seconds), ``segments`` (a list of ``{"start",
        "end", "text"}`` dicts, seconds from the clip's start) and
        ``backend`` (where it ran, in words). The GIL is released while the
        model runs; Ctrl-C raises KeyboardInterrupt at once, while the
        transcription (which cannot be stopped midway) finishes in the
        background and is dropped — a later call on the same model waits for
        it.

        Raises :class:`~ipfs_accelerate.errors.InvalidInputError` for audio
        that cannot be read or decoded and unusable options (a language an
        English-only model does not speak), ``TypeError`` for wrong types,
        :class:`~ipfs_accelerate.errors.ModelNotFoundError` for a missing
        model and :class:`~ipfs_accelerate.errors.UnsupportedModelTypeError`
        for a model that is not a Whisper model.
        """
        name = _model_arg(model)
        _check_str("language", language, optional=True)
        return self._native.transcribe(
            name,
            **audio_arguments(audio),
            timestamps=bool(timestamps),
            language=language,
            translate=bool(translate),
        )

    async def transcribe_async(self, model: Any, audio: Any, **kwargs: Any) -> Dict[str, Any]:
        """:meth:`transcribe` on a worker thread, awaitable."""
        return await asyncio.to_thread(self.transcribe, model, audio, **kwargs)

    def classify(
        self,
        model: Union[str, "os.PathLike[str]"],
        images: Union[str, "os.PathLike[str]", bytes, Sequence[Union[str, "os.PathLike[str]", bytes]]],
        *,
        labels: Optional[Sequence[str]] = None,
        top_k: int = 5,
        template: Optional[str] = None,
    ) -> List[List[Dict[str, Any]]]:
        """Classifies images on the CPU and returns, for each image in
        order, its ``top_k`` most probable labels as ``{"label": str,
        "score": float}`` dicts, most probable first.

        ``model``: an image-classifier directory (``config.json``,
        ``preprocessor_config.json``, ``model.safetensors``): a ViT
        (``ViTForImageClassification``) or EfficientNet-Lite, ranking the
        model's own labels (softmax of its logits), or a CLIP model (with its
        ``tokenizer.json``) ranking ``labels`` zero-shot; or a name or CID of
        one in the local model store (as for :meth:`embed`). Each model is
        loaded once per accelerator and kept. ``images``: a path or the bytes
        of an image file (PNG, JPEG, WebP, GIF or BMP), or a list of them.

        ``labels``: the candidate labels, CLIP only (and required there);
        their scores sum to 1 over all the labels. ``template``: how CLIP
        words each label (``{label}`` marks it; default ``"a photo of a
        {label}."``), CLIP only. ``top_k``: labels kept per image (1 or
        more). The GIL is released while the model runs; Ctrl-C raises
        KeyboardInterrupt at once (the batch finishes in the background and
        is dropped).

        Raises :class:`~ipfs_accelerate.errors.InvalidInputError` for an
        image that cannot be read or decoded, labels given to a ViT or
        EfficientNet (or none to CLIP), a template without ``{label}`` and
        other unusable values, ``TypeError`` for wrong types,
        :class:`~ipfs_accelerate.errors.ModelNotFoundError` for a missing
        model and :class:`~ipfs_accelerate.errors.UnsupportedModelTypeError`
        for a model that is not an image classifier.
        """
        name = _model_arg(model)
        image_args = image_list(images)
        label_args = label_list(labels)
        if not isinstance(top_k, int) or isinstance(top_k, bool):
            raise TypeError(f"top_k must be an int, not {type(top_k).__name__}")
        if top_k < 1:
            raise InvalidInputError(f"top_k must be 1 or more, not {top_k}")
        _check_str("template", template, optional=True)
        return self._native.classify(name, image_args, labels=label_args, top_k=top_k, template=template)

    async def classify_async(self, model: Any, images: Any, **kwargs: Any) -> List[List[Dict[str, Any]]]:
        """:meth:`classify` on a worker thread, awaitable."""
        return await asyncio.to_thread(self.classify, model, images, **kwargs)

    def close(self) -> None:
        """Stops every worker (browsers quit); later calls raise
        AcceleratorClosedError. Closing twice is harmless."""
        self._native.close()

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def get_accelerator(
    db_path: Optional[Union[str, "os.PathLike[str]"]] = None,
    max_connections: int = 4,
    headless: bool = True,
    enable_ipfs: bool = True,
) -> Accelerator:
    """A new :class:`Accelerator`.

    ``db_path``: the SQLite results database (default
    ``$IPFS_ACCELERATE_DATA_DIR/journal.sqlite3``, else
    ``~/.local/share/ipfs-accelerate/journal.sqlite3``; browser profiles are
    kept beside it). ``max_connections``: most browser workers at once.
    ``headless``: browsers without a window. ``enable_ipfs``: look model
    names and CIDs up in the local model store (else only directories).
    """
    return Accelerator(db_path, max_connections, headless, enable_ipfs)


_default: Optional[Accelerator] = None
_default_lock = threading.Lock()


def _shared() -> Accelerator:
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = get_accelerator()
        return _default


@atexit.register
def _close_shared() -> None:
    if _default is not None:
        _default.close()


def accelerate_with_browser(
    model_name: Union[str, "os.PathLike[str]"],
    inputs: Any,
    model_type: Optional[str] = None,
    platform: str = "webgpu",
    browser: Optional[str] = None,
    precision: int = 16,
    mixed_precision: bool = False,
    compute_shaders: Optional[bool] = None,
    precompile_shaders: bool = True,
    parallel_loading: Optional[bool] = None,
    use_real_browser: bool = True,
) -> Dict[str, Any]:
    """:meth:`Accelerator.accelerate_with_browser` on a shared accelerator
    made with :func:`get_accelerator`'s defaults (closed at exit)."""
    return _shared().accelerate_with_browser(
        model_name,
        inputs,
        model_type=model_type,
        platform=platform,
        browser=browser,
        precision=precision,
        mixed_precision=mixed_precision,
        compute_shaders=compute_shaders,
        precompile_shaders=precompile_shaders,
        parallel_loading=parallel_loading,
        use_real_browser=use_real_browser,
    )


__all__ = ["Accelerator", "get_accelerator", "accelerate_with_browser", "TEXT_EMBEDDING"]
