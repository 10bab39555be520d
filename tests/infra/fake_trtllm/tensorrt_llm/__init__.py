"""Stand-in for TensorRT-LLM 1.0.0's top level (see ../README.md)."""

import json
import os
from dataclasses import dataclass

__version__ = "1.0.0"


def record(call: str, **args) -> None:
    with open(os.environ["FAKE_TRTLLM_LOG"], "a") as f:
        f.write(json.dumps({"call": call, **args}, default=str) + "\n")


@dataclass
class Mapping:
    world_size: int = 1
    rank: int = 0
    gpus_per_node: int = 8
    cp_size: int = 1
    tp_size: int = 1
    pp_size: int = 1
    moe_tp_size: int = -1
    moe_ep_size: int = -1


class Engine:
    def __init__(self, model, build_config):
        self.model, self.build_config = model, build_config

    def save(self, engine_dir: str) -> None:
        os.makedirs(engine_dir, exist_ok=True)
        rank = self.model.mapping.rank
        open(os.path.join(engine_dir, f"rank{rank}.engine"), "w").write("engine")
        record("Engine.save", dir=engine_dir, rank=rank)


def build(model, build_config) -> Engine:
    record("build", model=type(model).__name__, build_config=vars(build_config))
    return Engine(model, build_config)
