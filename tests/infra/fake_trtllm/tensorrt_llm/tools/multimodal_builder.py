"""Stand-in for tensorrt_llm.tools.multimodal_builder (TensorRT-LLM 1.0.0): the visual-engine builder of
build_multimodal_engine.py. Same options and defaults; qwen2_vl traces on NVIDIA's demo image URL, as the real one."""

import json
import os

from tensorrt_llm import record

DEMO_IMAGE = "https://qianwen-res.oss-cn-beijing.aliyuncs.com/Qwen-VL/assets/demo.jpeg"
MODEL_TYPES = [
    "blip2", "llava", "llava_next", "llava_onevision", "llava_onevision_lmms", "vila", "nougat", "cogvlm", "fuyu",
    "pix2struct", "neva", "kosmos-2", "video-neva", "phi-3-vision", "phi-4-multimodal", "mllama", "internvl",
    "qwen2_vl", "internlm-xcomposer2", "qwen2_audio", "pixtral",
]  # fmt: skip


def add_multimodal_arguments(parser):
    parser.add_argument("--model_type", type=str, default=None, choices=MODEL_TYPES)
    parser.add_argument("--model_path", type=str, default=None)
    parser.add_argument("--vila_path", type=str, default=None)
    parser.add_argument("--output_dir", type=str, default=None)
    parser.add_argument("--max_batch_size", type=int, default=4)
    parser.add_argument("--max_hw_dims", type=int, default=5184)
    parser.add_argument("--min_hw_dims", type=int, default=128)
    parser.add_argument("--num_mul_bins", type=int, default=128)
    parser.add_argument("--max_mel_seq_len", type=int, default=3000)
    return parser


class MultimodalEngineBuilder:
    def __init__(self, args):
        if args.output_dir is None:
            args.output_dir = f"tmp/trt_engines/{args.model_path.split('/')[-1]}/multimodal_encoder"
        os.makedirs(args.output_dir, exist_ok=True)
        self.args = args

    def build(self):
        args = self.args
        if args.model_type != "qwen2_vl":
            raise NotImplementedError(f"the stand-in builds qwen2_vl only, not {args.model_type}")
        from qwen_vl_utils import process_vision_info

        content = [{"type": "image", "image": DEMO_IMAGE}, {"type": "text", "text": "Describe this picture?"}]
        messages = [{"role": "user", "content": content}]
        process_vision_info(messages)
        patches = args.max_hw_dims * args.max_batch_size  # the profile's max: input [patches, dim], mask [1, p, p]
        config = {"builder_config": {"model_type": "qwen2_vl", "max_batch_size": args.max_batch_size}}
        json.dump(config, open(os.path.join(args.output_dir, "config.json"), "w"))
        open(os.path.join(args.output_dir, "model.engine"), "w").write("visual engine")
        record("MultimodalEngineBuilder.build", max_batch_size=args.max_batch_size, max_patches=patches)
