"""Stand-in for qwen-vl-utils 0.0.8: images may be PIL images or local paths; a URL would be fetched (no internet)."""

from PIL import Image


def process_vision_info(conversations):
    images = []
    for message in conversations:
        for part in message.get("content", []):
            image = part.get("image") if isinstance(part, dict) else None
            if image is None:
                continue
            if isinstance(image, str) and image.startswith(("http://", "https://")):
                raise ConnectionError(f"would download {image} (build pods have no internet)")
            if not isinstance(image, Image.Image):
                raise TypeError(f"unsupported image {image!r}")
            images.append(image)
    return images, None
