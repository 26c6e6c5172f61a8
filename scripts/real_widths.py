"""Random VLMs with the real widths of LLaVA-1.5-7B and Qwen2.5-VL-7B and any depth, for
benchmarks: the forward passes and the captured states have the real sizes per layer, and
per-layer timings extrapolate to the real depth.

Built from a tiny checkpoint's processor and config (``mm-align tiny``), widths raised to the
published configs; vocabularies stay tiny (the LM head runs on one position, embeddings are a
lookup: neither costs time). Weights are random (one uniform pass), made on the target device.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["REAL", "LayerClock", "RealWidth", "build"]


@dataclass(frozen=True)
class RealWidth:
    family: str
    vision: dict
    text: dict
    real_depth: tuple[int, int]  # (vision layers, LLM layers) of the published model
    pixels: int  # images are resized to pixels x pixels


REAL = {
    "llava-1.5-7b": RealWidth(
        "llava",
        vision={"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                "image_size": 336, "patch_size": 14},
        text={"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
              "num_key_value_heads": 32, "max_position_embeddings": 4096},
        real_depth=(24, 32), pixels=336),
    "qwen2.5-vl-7b": RealWidth(
        "qwen2_5_vl",
        vision={"hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                "out_hidden_size": 3584, "window_size": 112},
        text={"hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28,
              "num_key_value_heads": 4, "max_position_embeddings": 128000,
              "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                  "mrope_section": [16, 24, 24]}},
        real_depth=(32, 28), pixels=448),
}


def _configure(spec: RealWidth, config, processor, depth: tuple[int, int]) -> None:
    vision_layers, llm_layers = depth
    config.text_config.update({**spec.text, "num_hidden_layers": llm_layers})
    if getattr(config.text_config, "head_dim", None):  # the tiny config's own would stay
        config.text_config.head_dim = spec.text["hidden_size"] // spec.text["num_attention_heads"]
    if getattr(config.text_config, "layer_types", None):  # one per layer, or a reload refuses it
        config.text_config.layer_types = [config.text_config.layer_types[0]] * llm_layers
    if spec.family == "llava":
        config.vision_config.update({**spec.vision, "num_hidden_layers": vision_layers})
        processor.image_processor.size = {"shortest_edge": spec.pixels}
        processor.image_processor.crop_size = {"height": spec.pixels, "width": spec.pixels}
        processor.patch_size = spec.vision["patch_size"]
    else:
        config.vision_config.update({**spec.vision, "depth": vision_layers,
                                     "fullatt_block_indexes": [vision_layers - 1]})
        area = spec.pixels * spec.pixels
        for part in (processor.image_processor, processor.video_processor):  # video: per frame
            part.min_pixels = part.max_pixels = area
            part.size = {"shortest_edge": area, "longest_edge": area}


def build(name: str, workdir: Path, depth: tuple[int, int], device: str = "cpu",
          dtype: torch.dtype = torch.float32):
    """An adapter over a random ``name`` model (a key of :data:`REAL`) of ``depth`` =
    (vision layers, LLM layers), constructed on ``device`` in ``dtype``."""
    from transformers import AutoConfig, AutoProcessor
    from transformers.initialization import no_init_weights

    from mm_align.adapters.registry import adapter_class

    spec = REAL[name]
    tiny = workdir / f"tiny-{spec.family}"
    if not tiny.exists():
        subprocess.run([sys.executable, "-m", "mm_align", "tiny", spec.family, str(tiny)],
                       check=True, capture_output=True)
    config, processor = AutoConfig.from_pretrained(tiny), AutoProcessor.from_pretrained(tiny)
    _configure(spec, config, processor, depth)
    cls = adapter_class(config.model_type)
    with torch.device(device), no_init_weights():
        model = cls.model_class(config)
    _random_weights(model)
    return cls(model.to(dtype).eval(), processor)


@torch.no_grad()
def _random_weights(model: nn.Module) -> None:
    """One cheap pass instead of two init passes: matrices uniform with std 0.02, 1-D weights
    (norms) 1, biases 0. Buffers (rotary frequencies) come from the constructors."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(0)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            p.uniform_(-0.02 * 3**0.5, 0.02 * 3**0.5, generator=g)
        else:
            p.fill_(0.0 if name.endswith("bias") else 1.0)


def vision_layers(adapter) -> nn.ModuleList:
    """The vision tower's blocks (Qwen: ``visual.blocks``; CLIP: ``encoder.layers``)."""
    model = adapter.model.model
    tower = model.visual if hasattr(model, "visual") else model.vision_tower
    return next(m for name, m in tower.named_modules()
                if isinstance(m, nn.ModuleList) and name.endswith(("blocks", "layers")))


class LayerClock:
    """Seconds spent inside the given layers (forward hooks; GPU work waited for)."""

    def __init__(self, layers: nn.ModuleList, clock: Callable[[], float] = time.perf_counter) -> None:
        self.layers, self.clock, self.seconds, self._start = layers, clock, 0.0, 0.0

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def _enter(self, *_) -> None:
        self._sync()
        self._start = self.clock()

    def _leave(self, *_) -> None:
        self._sync()
        self.seconds += self.clock() - self._start

    @contextmanager
    def running(self) -> Iterator[LayerClock]:
        self.seconds = 0.0
        handles = [h for layer in self.layers for h in (layer.register_forward_pre_hook(self._enter),
                                                       layer.register_forward_hook(self._leave))]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
