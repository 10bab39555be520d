"""The stand-in's "model": deterministic text and pixels, no weights.

Text generation rule (what tests may rely on):

* A *token* is a word. The first generated token is a bare word ("amber"); every later one is a space plus a word
  (" birch"). The generated text is the concatenation of the tokens.
* The words come from the fixed 32-word ``VOCAB``. Token ``i`` is
  ``VOCAB[sha256(f"{material}|{i}")[0] % 32]`` where ``material = f"{prompt}\\x00{seed or 0}"`` (plus, for the
  vision model, ``"\\x00img:<hash>"`` per image).
* The natural length (where the model emits its end token) is ``8 + sha256(material)[0] % 33``: 8..40 tokens.
* Vision: the first token for each image is ``image-<hash8>`` where ``hash8`` is the first 8 hex digits of the
  SHA-256 of the decoded bytes of a ``data:`` URL, or of the URL string itself for ``http(s)://`` (the stand-in
  never fetches anything).
* ``min_tokens`` postpones the end token: the completion is at least that long (words continue the same sequence);
  ``end_id`` -1 (TensorRT-LLM's "no end token", what ``ignore_eos`` sends) generates until ``max_tokens``.
* Token ``i``'s log probability (``output_log_probs``) is ``-(sha256(f"{material}|lp{i}")[0] + 1) / 64``.
* ``num_input_tokens`` is the number of whitespace-separated words in the prompt (``len(prompt.split())``).
* temperature, top_p, top_k, penalties, beam_width and bad_words are accepted and ignored: the output depends only
  on the prompt, the seed, min_tokens / end_id and the images.

Images: ``generated_image`` is a deterministic colour pattern derived from sha256(prompt, negative_prompt).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import urllib.parse

import numpy as np

VOCAB = (
    "amber",
    "birch",
    "cobalt",
    "delta",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "indigo",
    "juniper",
    "kelp",
    "lumen",
    "maple",
    "nectar",
    "onyx",
    "pebble",
    "quartz",
    "raven",
    "saffron",
    "tundra",
    "umber",
    "velvet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
    "acorn",
    "basalt",
    "cedar",
    "dune",
    "echo",
    "flint",
)
MIN_TOKENS = 8
MAX_TOKENS = 40
IMAGE_PLACEHOLDER = "<image>"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def material(prompt: str, seed: int | None = None, image_hashes: tuple[str, ...] | list[str] = ()) -> str:
    m = f"{prompt}\x00{seed or 0}"
    for h in image_hashes:
        m += f"\x00img:{h}"
    return m


def generate_tokens(
    prompt: str, seed: int | None = None, image_hashes: tuple[str, ...] | list[str] = (), length: int | None = None
) -> list[str]:
    """The full natural completion as a list of tokens (before max_tokens / stop strings cut it); `length` overrides
    where the end token comes (min_tokens, ignore_eos)."""
    mat = material(prompt, seed, image_hashes)
    n = MIN_TOKENS + _digest(mat)[0] % (MAX_TOKENS - MIN_TOKENS + 1)
    if length is not None:
        n = length
    words = [f"image-{h[:8]}" for h in image_hashes]
    i = 0
    while len(words) < n:
        words.append(VOCAB[_digest(f"{mat}|{i}")[0] % len(VOCAB)])
        i += 1
    return [w if k == 0 else " " + w for k, w in enumerate(words)]


def complete(
    prompt: str,
    max_tokens: int,
    seed: int | None = None,
    stop: list[str] | tuple[str, ...] = (),
    image_hashes: tuple[str, ...] | list[str] = (),
    min_tokens: int = 0,
    ignore_eos: bool = False,
) -> list[str]:
    """Tokens the engine actually emits: cut at max_tokens, or right after the token that completes a stop string
    (the stop string stays in the output, as with TensorRT-LLM)."""
    natural = len(generate_tokens(prompt, seed, image_hashes))
    length = max_tokens if ignore_eos else max(natural, min(min_tokens, max_tokens))
    return cut(generate_tokens(prompt, seed, image_hashes, length), max_tokens, stop)


def cut(tokens: list[str], max_tokens: int, stop: list[str] | tuple[str, ...] = ()) -> list[str]:
    """What the engine emits of a planned answer: at most max_tokens, and nothing after the token that completes
    a stop string (which stays in the output, as with TensorRT-LLM)."""
    out: list[str] = []
    text = ""
    stops = [s for s in stop if s]
    for tok in tokens:
        if len(out) >= max_tokens:
            break
        out.append(tok)
        text += tok
        if any(s in text for s in stops):
            break
    return out


def token_logprob(prompt: str, seed: int | None, image_hashes, i: int) -> float:
    return -(_digest(f"{material(prompt, seed, image_hashes)}|lp{i}")[0] + 1) / 64


def count_input_tokens(prompt: str) -> int:
    return len(prompt.split())


def image_hash(url: str) -> str:
    """SHA-256 hex of a data: URL's bytes, or of an http(s) URL string. ValueError on anything else."""
    if url.startswith("data:"):
        try:
            header, payload = url[5:].split(",", 1)
        except ValueError:
            raise ValueError("malformed data: URL (no comma)") from None
        if header.endswith(";base64"):
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("malformed data: URL (invalid base64)") from None
        else:
            data = urllib.parse.unquote_to_bytes(payload)
        return hashlib.sha256(data).hexdigest()
    if url.startswith(("http://", "https://")):
        return hashlib.sha256(url.encode()).hexdigest()
    raise ValueError(f"unsupported image URL scheme (want http(s):// or data:): {url[:40]!r}")


def generate_image(prompt: str, negative_prompt: str = "", width: int = 64, height: int = 64) -> np.ndarray:
    """A deterministic uint8 [height, width, 3] picture for the prompt."""
    h = hashlib.sha256(f"{prompt}\x00{negative_prompt}".encode()).digest()
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    chans = []
    for c in range(3):
        a, b, k = h[c * 3] + 1, h[c * 3 + 1] + 1, h[c * 3 + 2]
        chans.append((x * a + y * b + k + ((x // 8 + y // 8) % 2) * h[9 + c]) % 256)
    return np.stack(chans, axis=-1).astype(np.uint8)
