"""A STAND-IN for Triton + TensorRT-LLM: speaks the real Triton gRPC protocol, generates deterministic text and
images without a GPU. For local runs and tests only; the gateway cannot tell it from Triton.

    python -m devtools.standin --port 8001 --profile chat
"""

from .engine import VOCAB, complete, count_input_tokens, generate_image, generate_tokens, image_hash
from .models import PROFILES, build_models
from .server import StandInServer

__all__ = [
    "PROFILES",
    "VOCAB",
    "StandInServer",
    "build_models",
    "complete",
    "count_input_tokens",
    "generate_image",
    "generate_tokens",
    "image_hash",
]
