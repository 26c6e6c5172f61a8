"""seeded_init: the streamed build (module by module onto the target device and dtype) gives
the weights of the whole float32 CPU build, bit for bit, with one module's tensors in CPU RAM."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel, LlamaConfig, LlamaModel, OPTConfig, Qwen2Config, Qwen2Model

from mm_align.adapters.modules import seeded_init

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=100)
FAMILIES = {"llama": (LlamaModel, LlamaConfig(**SMALL)), "qwen2": (Qwen2Model, Qwen2Config(**SMALL))}


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _assert_same_weights(got: torch.nn.Module, want: torch.nn.Module) -> None:
    a, b = _tensors(got), _tensors(want)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].device == b[name].device, name
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_streamed_build_equals_whole_build(family: str, dtype: torch.dtype, caplog) -> None:
    cls, config = FAMILIES[family]
    whole = seeded_init(cls, config, 5).to(dtype=dtype)
    with caplog.at_level(logging.INFO, logger="mm_align.adapters.modules"):
        streamed = seeded_init(cls, config, 5, device="cpu", dtype=dtype)
    assert "whole" not in caplog.text  # the streamed route ran, no fallback
    _assert_same_weights(streamed, whole)
    # And that is the paper's procedure: the class under torch.manual_seed(seed).
    torch.manual_seed(5)
    _assert_same_weights(streamed, cls(config).to(dtype=dtype))


def test_seed_matters_and_caller_rng_is_untouched() -> None:
    cls, config = FAMILIES["llama"]
    state = torch.get_rng_state()
    a = seeded_init(cls, config, 1, device="cpu", dtype=torch.float32)
    b = seeded_init(cls, config, 2, device="cpu", dtype=torch.float32)
    assert not torch.equal(a.embed_tokens.weight, b.embed_tokens.weight)
    assert torch.equal(torch.get_rng_state(), state)


def test_nested_models_fall_back_to_the_whole_build(caplog) -> None:
    # AutoModel.from_config(OPT) holds an OPTDecoder, itself a transformers model: the paper's
    # diff-erank path; its weights must stay those of the official procedure.
    config = OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                       vocab_size=100, word_embed_proj_dim=64)
    with caplog.at_level(logging.INFO, logger="mm_align.adapters.modules"):
        got = seeded_init(AutoModel.from_config, config, 0, device="cpu", dtype=torch.float16)
    assert "another transformers model" in caplog.text
    torch.manual_seed(0)
    _assert_same_weights(got, AutoModel.from_config(config, dtype=torch.float32).half())


_PEAK = textwrap.dedent("""
    import json, sys, threading, torch
    from transformers import LlamaConfig, LlamaModel
    from mm_align.adapters.modules import seeded_init
    route = sys.argv[1]
    config = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=8, vocab_size=4096)
    seeded_init(LlamaModel, LlamaConfig(**{**config.to_dict(), "num_hidden_layers": 1,
                "hidden_size": 64, "intermediate_size": 64}), 0, dtype=torch.bfloat16)  # warm-up

    def anon():  # resident minus file-backed pages: what this process allocated itself
        resident, shared = open("/proc/self/statm").read().split()[1:3]
        return (int(resident) - int(shared)) * 4096

    peak, done = [anon()], threading.Event()
    def sample():
        while not done.wait(0.0005):
            peak[0] = max(peak[0], anon())
    before = anon()
    sampler = threading.Thread(target=sample)
    sampler.start()
    if route == "streamed":
        model = seeded_init(LlamaModel, config, 0, device="cpu", dtype=torch.bfloat16)
    else:
        model = seeded_init(LlamaModel, config, 0).to(dtype=torch.bfloat16)
    done.set()
    sampler.join()
    print(json.dumps({"growth": max(peak[0], anon()) - before,
                      "final": sum(p.numel() * p.element_size() for p in model.parameters()),
                      "f32": sum(p.numel() * 4 for p in model.parameters()),
                      "largest_f32": max(p.numel() * 4 for p in model.parameters())}))
""")


def _peak(route: str) -> dict[str, int]:
    # Anonymous resident memory, sampled every 0.5 ms (file-backed pages, e.g. libraries
    # evicted and faulted back under memory pressure, are not ours). A fixed mmap threshold:
    # glibc otherwise raises it to the size of the last freed block and keeps freed tensors'
    # pages in its heap, so RSS would measure the allocator's cache, not the tensors alive
    # (the weight matrices of real LLMs are above its 32 MB cap anyway).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    out = subprocess.run([sys.executable, "-c", _PEAK, route], check=True, capture_output=True,
                         text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_streamed_build_holds_one_module_at_a_time_in_cpu_memory() -> None:
    # A 101M-parameter Llama to bfloat16 on the CPU: the streamed peak is the bf16 model plus
    # about one float32 weight matrix; the whole build holds the float32 model and its copy.
    streamed, whole = _peak("streamed"), _peak("whole")
    bound = streamed["final"] + 2 * streamed["largest_f32"] + 32 * 2**20
    assert streamed["growth"] < bound, (streamed, bound)
    assert whole["growth"] > streamed["f32"] > bound, (whole, bound)  # the check has teeth


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_device_built_weights_equal_cpu_built(dtype: torch.dtype) -> None:
    cls, config = FAMILIES["llama"]
    on_device = seeded_init(cls, config, 9, device="cuda", dtype=dtype)
    assert all(p.is_cuda for p in on_device.parameters())
    _assert_same_weights(on_device, seeded_init(cls, config, 9).to("cuda", dtype))
