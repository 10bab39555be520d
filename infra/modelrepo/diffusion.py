"""Recipe ``image-generation``: the Triton tutorials' Stable Diffusion deployment —
triton-inference-server/tutorials, branch r25.10, Popular_Models_Guide/StableDiffusion (README.md,
docs/model_configuration.md; configs ``diffusion-models/stable_diffusion_1_5`` and ``stable_diffusion_xl``). Those
configs are concrete (no placeholders); the recipe sets the documented parameters ``image_height``,
``image_width`` and ``steps`` when the spec gives them and serves the model under the catalog's model name.
The templates directory is the tutorial's ``diffusion-models``.
"""

from __future__ import annotations

from .build import ModelFill

VARIANTS = {"sd-1.5": "stable_diffusion_1_5", "sdxl": "stable_diffusion_xl"}


def variant_of(source: str | None) -> str | None:
    """Which of the tutorial's two models a checkpoint is, from its source name; None when neither."""
    s = (source or "").lower().replace("_", "-")
    if "xl" in s and ("stable-diffusion" in s or "sdxl" in s):
        return "sdxl"
    if any(
        k in s
        for k in ("stable-diffusion-v1-5", "stable-diffusion-1-5", "stable-diffusion-1.5", "sd-1.5", "sd-v1-5", "sd15")
    ):
        return "sd-1.5"
    return None


def models(spec) -> list[ModelFill]:
    def edit(cfg):
        for key, value in (
            ("image_width", spec.image_width),
            ("image_height", spec.image_height),
            ("steps", spec.steps),
        ):
            if value is not None:
                cfg.parameters[key].string_value = str(value)

    return [ModelFill(spec.served_name or "stable_diffusion", VARIANTS[spec.diffusion_variant], edit=edit)]
