"""Type stubs of the Rust extension ``ipfs_accelerate._native``."""

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__version__: str

class NativeAccelerator:
    def __init__(
        self,
        db_path: Optional[str] = None,
        max_connections: int = 4,
        headless: bool = True,
        enable_ipfs: bool = True,
    ) -> None: ...
    @property
    def db_path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def embed(
        self, model: str, texts: List[str], platform: str = "cpu", browser: Optional[str] = None
    ) -> Dict[str, Any]: ...
    def generate(
        self,
        model: str,
        prompt: Optional[str] = None,
        messages: Optional[List[Tuple[str, str]]] = None,
        max_tokens: int = 256,
        temperature: float = 0.8,
        top_p: float = 0.95,
        top_k: int = 40,
        repetition_penalty: float = 1.0,
        seed: Optional[int] = None,
        stop: List[str] = ...,
        on_text: Optional[Callable[[str], Any]] = None,
    ) -> Dict[str, Any]: ...
    def transcribe(
        self,
        model: str,
        path: Optional[str] = None,
        data: Optional[bytes] = None,
        samples: Optional[bytes] = None,
        timestamps: bool = False,
        language: Optional[str] = None,
        translate: bool = False,
    ) -> Dict[str, Any]: ...
    def classify(
        self,
        model: str,
        images: List[Union[str, bytes]],
        labels: Optional[List[str]] = None,
        top_k: int = 5,
        template: Optional[str] = None,
    ) -> List[List[Dict[str, Any]]]: ...
    def decode(self, model: str, ids: List[List[int]]) -> List[str]: ...
    def close(self) -> None: ...

class NativeBridge:
    def __init__(self, browser_name: str = "chrome", headless: bool = True) -> None: ...
    def capabilities(self) -> Tuple[str, Optional[str]]: ...
    def embed(self, model: str, texts: List[str], timeout: Optional[float] = None) -> Dict[str, Any]: ...
    def stop(self) -> None: ...
