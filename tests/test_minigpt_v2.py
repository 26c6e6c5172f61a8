"""MiniGPT-v2 against computations written out here from the official code
(``minigpt4/models/eva_vit.py``, ``minigpt_v2.py``, ``minigpt_base.get_context_emb``), fed the
raw tensors of the tiny checkpoint's files (official layout, built by ``mm-align tiny``)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoTokenizer, LlamaForCausalLM

from mm_align.adapters.minigpt_v2 import MiniGPTv2Adapter
from mm_align.adapters.ports.minigpt_v2 import CheckpointKeyError, MiniGPTv2

CLOSE = {"rtol": 1e-4, "atol": 1e-4}
LORA = "llama_model.base_model.model.model.layers.{}.self_attn.{}.lora_{}.weight"


@pytest.fixture(scope="module")
def folder(tiny_checkpoints) -> Path:
    return tiny_checkpoints["minigpt_v2"]


@pytest.fixture(scope="module")
def files(folder: Path) -> SimpleNamespace:
    """The files' raw contents, read without the adapter."""
    return SimpleNamespace(
        config=json.loads((folder / "config.json").read_text()),
        eva=torch.load(folder / "eva_vit_g.pth", weights_only=True),
        ckpt=torch.load(folder / "minigptv2_checkpoint.pth", weights_only=True)["model"],
        tokenizer=AutoTokenizer.from_pretrained(folder / "llama"),
    )


@pytest.fixture(scope="module")
def reference_llm(folder: Path, files: SimpleNamespace) -> LlamaForCausalLM:
    """The Llama folder with every LoRA pair merged by hand: W + alpha / r * B @ A."""
    model = LlamaForCausalLM.from_pretrained(folder / "llama").eval()
    scale = files.config["lora_alpha"] / files.config["lora_r"]
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            for target in ("q_proj", "v_proj"):
                a, b = files.ckpt[LORA.format(i, target, "A")], files.ckpt[LORA.format(i, target, "B")]
                getattr(layer.self_attn, target).weight += scale * b @ a
    return model


def reference_vision(files: SimpleNamespace, pixels: torch.Tensor) -> torch.Tensor:
    """EVA ViT -> ln_vision (weight 1, bias 0) -> CLS dropped: (grid**2, width) for one image."""
    s, c = files.eva, files.config
    width, heads, patch = c["vision_width"], c["vision_heads"], c["patch_size"]
    grid, old = c["image_size"] // patch, math.isqrt(s["pos_embed"].shape[1] - 1)
    patches = pixels[0].unfold(1, patch, patch).unfold(2, patch, patch)  # (3, grid, grid, patch, patch)
    patches = patches.permute(1, 2, 0, 3, 4).reshape(grid * grid, -1)
    x = patches @ s["patch_embed.proj.weight"].reshape(width, -1).T + s["patch_embed.proj.bias"]
    pos = s["pos_embed"][0, 1:].reshape(1, old, old, width).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=(grid, grid), mode="bicubic", align_corners=False)
    pos = pos[0].permute(1, 2, 0).reshape(-1, width)
    x = torch.cat([s["cls_token"][0] + s["pos_embed"][0, :1], x + pos])
    for i in range(c["vision_depth"]):
        p = lambda name: s[f"blocks.{i}.{name}"]  # noqa: E731
        h = F.layer_norm(x, (width,), p("norm1.weight"), p("norm1.bias"), 1e-6)
        wq, wk, wv = p("attn.qkv.weight").chunk(3)
        q, k, v = (t.reshape(-1, heads, width // heads).transpose(0, 1)
                   for t in (h @ wq.T + p("attn.q_bias"), h @ wk.T, h @ wv.T + p("attn.v_bias")))
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(width // heads), dim=-1)
        x = x + (attention @ v).transpose(0, 1).reshape(-1, width) @ p("attn.proj.weight").T + p("attn.proj.bias")
        h = F.layer_norm(x, (width,), p("norm2.weight"), p("norm2.bias"), 1e-6)
        x = x + F.gelu(h @ p("mlp.fc1.weight").T + p("mlp.fc1.bias")) @ p("mlp.fc2.weight").T + p("mlp.fc2.bias")
    return F.layer_norm(x, (width,), eps=1e-5)[1:]


def reference_tokens(files: SimpleNamespace, vision: torch.Tensor) -> torch.Tensor:
    """llama_proj on every 4 consecutive rows side by side (the official ``view``)."""
    merged = torch.cat([vision[0::4], vision[1::4], vision[2::4], vision[3::4]], dim=1)
    return merged @ files.ckpt["llama_proj.weight"].T + files.ckpt["llama_proj.bias"]


@pytest.fixture(scope="module", params=["plain", "chat"])
def run(request, load_tiny, images, texts):
    adapter = load_tiny("minigpt_v2", prompt=request.param)
    return adapter, adapter.represent_batch(images, texts, layers=[0, 1])


@pytest.mark.slow
def test_pixels_are_the_official_eval_transform(run, images) -> None:
    _, reps = run
    mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
    for rep, image in zip(reps, images):
        resized = np.asarray(image.resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float64) / 255
        expected = torch.from_numpy(((resized - mean) / std).transpose(2, 0, 1)).float()
        torch.testing.assert_close(rep.inputs["joint"]["pixel_values"][0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_vision_and_projector_against_the_official_computation(run, files) -> None:
    adapter, reps = run
    assert adapter.projector is adapter.model.llama_proj
    for rep in reps:
        vision = reference_vision(files, rep.inputs["joint"]["pixel_values"])
        torch.testing.assert_close(rep["vision"], vision, **CLOSE)
        assert rep["vision"].shape == (64, 32) and rep["projector"].shape == (16, 64)
        torch.testing.assert_close(rep["projector"], reference_tokens(files, vision), **CLOSE)


@pytest.mark.slow
def test_lora_is_merged_into_q_and_v_only(load_tiny, folder, files) -> None:
    merged = load_tiny("minigpt_v2").model.llama_model.model.layers
    base = LlamaForCausalLM.from_pretrained(folder / "llama").model.layers
    scale = files.config["lora_alpha"] / files.config["lora_r"]
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for i in range(2):
            for target in ("q_proj", "k_proj", "v_proj", "o_proj"):
                weight = getattr(base[i].self_attn, target).weight
                if target in ("q_proj", "v_proj"):
                    a, b = files.ckpt[LORA.format(i, target, "A")], files.ckpt[LORA.format(i, target, "B")]
                    weight = weight + scale * b @ a
                got = getattr(merged[i].self_attn, target)(x)
                torch.testing.assert_close(got, x @ weight.T, rtol=1e-5, atol=1e-5)


def _official_prompt(adapter, text: str, image: bool) -> str:
    if adapter.prompt == "plain":
        return ("<ImageHere>" if image else "") + text
    return f"[INST] {'<Img><ImageHere></Img> ' if image else ''}{text} [/INST]"


@pytest.mark.slow
def test_llm_stages_against_a_reference_forward_of_get_context_emb(run, files, reference_llm, texts) -> None:
    adapter, reps = run
    embed = reference_llm.get_input_embeddings()
    tokenizer = files.tokenizer
    for rep, text in zip(reps, texts):
        # get_context_emb: pieces around <ImageHere> tokenized alone, BOS on the first only.
        first, second = _official_prompt(adapter, text, image=True).split("<ImageHere>")
        ids = tokenizer(first).input_ids, tokenizer(second, add_special_tokens=False).input_ids
        image = reference_tokens(files, reference_vision(files, rep.inputs["joint"]["pixel_values"]))
        assert rep.inputs["joint"]["input_ids"][0].tolist() == ids[0] + [adapter.image_token_id] * 16 + ids[1]
        assert torch.nonzero(rep.masks["image"]).flatten().tolist() == list(range(len(ids[0]), len(ids[0]) + 16))
        embeds = torch.cat([embed(torch.tensor(ids[0])), image, embed(torch.tensor(ids[1]))])
        text_ids = tokenizer(_official_prompt(adapter, text, image=False)).input_ids
        assert rep.inputs["text"]["input_ids"][0].tolist() == text_ids
        with torch.inference_mode():
            joint = reference_llm(inputs_embeds=embeds[None], output_hidden_states=True).hidden_states
            alone = reference_llm(torch.tensor([text_ids]), output_hidden_states=True).hidden_states
        for layer in (0, 1, 2):
            torch.testing.assert_close(rep.layer("image", layer), joint[layer][0][rep.masks["image"]], **CLOSE)
            torch.testing.assert_close(rep.layer("joint", layer), joint[layer][0][rep.masks["joint"]], **CLOSE)
            torch.testing.assert_close(rep.layer("text", layer), alone[layer][0][rep.masks["text"]], **CLOSE)
        assert tokenizer.decode(rep.inputs["text"]["input_ids"][0][rep.masks["text"]]) == text


@pytest.mark.slow
def test_batch_of_three_equals_one_at_a_time(run, images, texts) -> None:
    adapter, reps = run
    for image, text, batched in zip(images, texts, reps):
        single = adapter.represent(image, text)
        for stage in single:
            torch.testing.assert_close(batched[stage], single[stage], **CLOSE)


@pytest.mark.slow
def test_untrained_llm_reinitialises_the_llama_only(load_tiny, images, texts) -> None:
    adapter = load_tiny("minigpt_v2")
    before = adapter.represent(images[0], texts[0])
    with adapter.untrained_llm(seed=1) as fresh:
        untrained = fresh.represent(images[0], texts[0])
    after = adapter.represent(images[0], texts[0])
    torch.testing.assert_close(untrained["projector"], before["projector"])
    assert not torch.allclose(untrained["joint"], before["joint"], atol=1e-3)
    torch.testing.assert_close(after["joint"], before["joint"])


def _edit(path: Path, change) -> None:
    """Rewrite a .pth file through ``change(state)`` (the checkpoint's {"model": ...} kept)."""
    saved = torch.load(path, weights_only=True)
    change(saved["model"] if "model" in saved else saved)
    torch.save(saved, path)


@pytest.mark.parametrize(
    ("file", "change", "named"),
    [
        ("minigptv2_checkpoint.pth", lambda s: s.pop(LORA.format(1, "v_proj", "B")), LORA.format(1, "v_proj", "B")),
        ("minigptv2_checkpoint.pth", lambda s: s.pop("llama_proj.bias"), "llama_proj.bias"),
        ("minigptv2_checkpoint.pth", lambda s: s.update({LORA.format(0, "k_proj", "A"): torch.zeros(4, 64)}),
         LORA.format(0, "k_proj", "A")),
        ("eva_vit_g.pth", lambda s: s.pop("blocks.1.mlp.fc2.bias"), "blocks.1.mlp.fc2.bias"),
        ("eva_vit_g.pth", lambda s: s.update({"blocks.0.attn.k_bias": torch.zeros(32)}), "blocks.0.attn.k_bias"),
    ],
    ids=["lora-missing", "proj-missing", "lora-unexpected", "eva-missing", "eva-unexpected"],
)
def test_missing_or_unexpected_keys_are_named(folder, tmp_path, file, change, named) -> None:
    copy = shutil.copytree(folder, tmp_path / "m")
    _edit(copy / file, change)
    with pytest.raises(CheckpointKeyError, match=named.replace(".", r"\.")):
        MiniGPTv2.from_pretrained(copy)


@pytest.mark.slow
def test_later_peft_names_and_official_extras_load_the_same(folder, tmp_path, files, load_tiny) -> None:
    copy = shutil.copytree(folder, tmp_path / "m")

    def later_peft(state):  # peft >= 0.3 names the adapter: lora_A.default.weight
        for key in [k for k in state if ".lora_" in k]:
            state[key.replace(".weight", ".default.weight")] = state.pop(key)

    _edit(copy / "minigptv2_checkpoint.pth", later_peft)
    # EVA-CLIP's last block and head, which the official tower does not build.
    extras = {"blocks.2.norm1.weight": torch.ones(32), "head.weight": torch.ones(8, 32)}
    _edit(copy / "eva_vit_g.pth", lambda s: s.update(extras))
    with pytest.warns(UserWarning, match=r"ignoring 2 tensors.*blocks\.2\.norm1\.weight"):
        model = MiniGPTv2.from_pretrained(copy)
    expected = load_tiny("minigpt_v2").model.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow
def test_a_fresh_process_finds_the_family(folder) -> None:
    # `score` reads the run identity and `--dtype auto` the config's dtype before load_vlm, in a
    # process that has looked no family up yet: both must know the folder's model type.
    code = (
        "from mm_align.pipeline.provenance import model_identity; "
        "from mm_align.pipeline.loading import checkpoint_dtype; "
        f"print(model_identity({str(folder)!r})['model_type'], checkpoint_dtype({str(folder)!r}, {{}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["minigpt_v2", "float32"]


@pytest.mark.slow
def test_load_vlm_finds_the_folder(load_tiny, folder) -> None:
    adapter = load_tiny("minigpt_v2")
    assert type(adapter) is MiniGPTv2Adapter
    assert adapter.model.config.model_type == "minigpt_v2" and adapter.model.name_or_path == str(folder)
    assert adapter.num_hidden_states == 3 and adapter.include_special is False


@pytest.mark.filterwarnings("ignore:RANDOM WEIGHTS")
def test_position_table_stays_float32_from_an_fp16_file_in_an_fp16_load(folder, tmp_path, files, images, texts) -> None:
    # The official interpolate_pos_embed resizes the file's table after .float() and loads it into
    # a float32 parameter that convert_weights_to_fp16 leaves alone: never rounded to fp16.
    half = tmp_path / "fp16"
    shutil.copytree(folder, half)
    eva16 = {name: value.half() for name, value in files.eva.items()}
    torch.save(eva16, half / "eva_vit_g.pth")
    old = math.isqrt(eva16["pos_embed"].shape[1] - 1)
    grid = files.config["image_size"] // files.config["patch_size"]
    table = eva16["pos_embed"].float()
    pos = F.interpolate(table[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2), size=(grid, grid),
                        mode="bicubic", align_corners=False)
    expected = torch.cat([table[:, :1], pos.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)
    assert not torch.equal(expected, expected.half().float())  # fp16 rounding would show

    adapter = MiniGPTv2Adapter.from_pretrained(half, dtype="float16")
    tower = adapter.model.visual_encoder
    assert adapter.dtype == torch.float16 and tower.blocks[0].attn.qkv.weight.dtype == torch.float16
    assert tower.pos_embed.dtype == tower.cls_token.dtype == torch.float32
    assert torch.equal(tower.pos_embed.data, expected)
    assert torch.equal(tower.cls_token.data, eva16["cls_token"].float())
    rep = adapter.represent(images[0], texts[0])
    assert rep["vision"].dtype == torch.float16 and bool(rep["vision"].isfinite().all())
