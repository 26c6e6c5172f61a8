"""Video clips and several images per sample, on tiny checkpoints, against transformers' own
``get_video_features`` / ``get_image_features`` and ``output_hidden_states`` (1e-4), with
exact masks. The families come from the registry (those that declare video or several images)."""

from __future__ import annotations

import warnings

import pytest
import torch

from mm_align.adapters import AdapterInputError, adapter_class
from mm_align.data.video import FrameSampling, load_video
from tests.clips import pan, pan_clip
from tests.helpers import FLOAT32_RECOMPUTED, families
from tests.test_adapters_common import hidden_states, image_only_inputs

TOL = {"rtol": FLOAT32_RECOMPUTED, "atol": FLOAT32_RECOMPUTED}
VIDEO_FAMILIES = [f for f in families() if adapter_class(f).takes_video()]
SEVERAL_FAMILIES = [f for f in families() if adapter_class(f).max_images_per_sample != 1]
TEXT = "A camera pans across an astronaut."


def test_the_issue_families_are_covered() -> None:
    assert {"qwen2_5_vl", "qwen3_vl", "llava_onevision"} <= set(VIDEO_FAMILIES)
    assert len(SEVERAL_FAMILIES) >= 4


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return pan_clip("astronaut", tmp_path_factory.mktemp("clips") / "pan.mp4", n_frames=10)


@pytest.fixture(scope="module")
def clip(clip_path):
    return load_video(clip_path, FrameSampling(num_frames=4))


def _features(adapter, inputs, method: str, keys: tuple[str, ...]) -> torch.Tensor:
    """What transformers' own ``method`` returns for ``inputs``, as rows in token order."""
    with torch.inference_mode():
        out = getattr(adapter.model, method)(*(inputs[key] for key in keys if key in inputs))
    value = getattr(out, "pooler_output", out)
    parts = value if isinstance(value, (list, tuple)) else [value]
    return torch.cat([part.reshape(-1, part.shape[-1]) for part in parts])


def _check_llm_stages(adapter, rep) -> None:
    joint = hidden_states(adapter, rep.inputs["joint"])
    text = hidden_states(adapter, rep.inputs["text"])
    alone = hidden_states(adapter, image_only_inputs(rep))
    for layer in (0, -1):
        torch.testing.assert_close(rep.layer("joint", layer), joint[layer][rep.masks["joint"]], **TOL)
        torch.testing.assert_close(rep.layer("text", layer), text[layer][rep.masks["text"]], **TOL)
        image_mask = rep.masks["image"][: alone[layer].shape[0]]
        torch.testing.assert_close(rep.layer("image", layer), alone[layer][image_mask], **TOL)
    # The features enter the LLM unchanged at the placeholder positions.
    torch.testing.assert_close(joint[0][rep.masks["image"]], rep["projector"], **TOL)


def _check_text_masks(adapter, rep, text: str) -> None:
    tokenizer = adapter.processor.tokenizer
    joint_ids = rep.inputs["joint"]["input_ids"][0]
    assert not bool(rep.masks["text"][0]) and not bool(rep.masks["joint"][0])  # position 0 never counts
    # The text's tokens, with position 0 where the text-only pass begins with the text (no BOS).
    text_tokens = rep.masks["text"].clone()
    if tokenizer.decode(rep.inputs["text"]["input_ids"][0][text_tokens]) != text:
        text_tokens[0] = True
    assert tokenizer.decode(rep.inputs["text"]["input_ids"][0][text_tokens]) == text
    assert tokenizer.decode(joint_ids[rep.masks["joint"] & ~rep.masks["image"]]) == text
    assert not bool((rep.masks["image"] & ~rep.masks["joint"]).any())


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["plain", "chat"])
@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_video_stages_equal_transformers(family, prompt, load_tiny, clip) -> None:
    adapter = load_tiny(family, prompt=prompt)
    rep = adapter.represent(clip, TEXT, layers=[0])
    inputs = rep.inputs["joint"]
    ids = inputs["input_ids"][0]
    assert torch.equal(rep.masks["image"], ids == adapter.video_token_id)
    assert not bool((ids == adapter.image_token_id).any())
    features = _features(adapter, inputs, "get_video_features", ("pixel_values_videos", "video_grid_thw"))
    torch.testing.assert_close(rep["projector"], features, **TOL)
    assert rep["projector"].shape[0] == int(rep.masks["image"].sum()) == rep["image"].shape[0]
    _check_llm_stages(adapter, rep)
    _check_text_masks(adapter, rep, TEXT)


@pytest.mark.parametrize("family", ["qwen2_5_vl"])
def test_video_vision_is_the_merger_input_of_every_frame_pair(family, load_tiny, clip) -> None:
    adapter = load_tiny(family)
    rep = adapter.represent(clip, TEXT)
    inputs = rep.inputs["joint"]
    with torch.inference_mode():
        tower = adapter.model.model.visual(inputs["pixel_values_videos"], grid_thw=inputs["video_grid_thw"])
    torch.testing.assert_close(rep["vision"], tower.last_hidden_state, **TOL)
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == len(clip) // 2 and rep["vision"].shape[0] == t * h * w == 4 * rep["projector"].shape[0]


def test_llava_onevision_video_vision_is_every_frames_patches(load_tiny, clip) -> None:
    adapter = load_tiny("llava_onevision")
    rep = adapter.represent(clip, TEXT)
    frames = rep.inputs["joint"]["pixel_values_videos"][0]
    with torch.inference_mode():
        hidden = adapter.model.model.vision_tower(frames, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(rep["vision"], hidden.reshape(-1, hidden.shape[-1]), **TOL)
    # Pooled 2 x 2 per frame, then one image_newline row closing the clip.
    assert rep["projector"].shape[0] == len(clip) * hidden.shape[1] // 4 + 1


@pytest.mark.slow
@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_video_batch_equals_one_at_a_time_and_mixes_with_images(family, load_tiny, clip, clip_path, images,
                                                                 texts) -> None:
    adapter = load_tiny(family)
    short = load_video(clip_path, FrameSampling(num_frames=2))
    batch = adapter.represent_batch([clip, images[0], short], [TEXT, texts[0], texts[1]])
    for rep, (visual, text) in zip(batch, [(clip, TEXT), (images[0], texts[0]), (short, texts[1])]):
        single = adapter.represent(visual, text)
        for stage in ("vision", "projector", "image", "text", "joint"):
            torch.testing.assert_close(rep[stage], single[stage], **TOL)


@pytest.mark.parametrize("family", SEVERAL_FAMILIES)
def test_two_images_count_the_two_single_counts_added(family, load_tiny, images, texts) -> None:
    adapter = load_tiny(family)
    pair = adapter.represent([images[0], images[2]], texts[0])
    first, second = (adapter.represent(image, texts[0]) for image in (images[0], images[2]))
    counts = [int(rep.masks["image"].sum()) for rep in (pair, first, second)]
    assert counts[0] == counts[1] + counts[2]
    # Rows stacked in image order: the first image's projector rows, then the second's.
    torch.testing.assert_close(pair["projector"], torch.cat([first["projector"], second["projector"]]), **TOL)
    torch.testing.assert_close(pair["vision"], torch.cat([first["vision"], second["vision"]]), **TOL)


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["plain", "chat"])
@pytest.mark.parametrize("family", SEVERAL_FAMILIES)
def test_several_images_equal_transformers(family, prompt, load_tiny, images, texts) -> None:
    adapter = load_tiny(family, prompt=prompt)
    reps = adapter.represent_batch([[images[0], images[1]], images[3], [images[2], images[3], images[0]]],
                                   [texts[0], texts[1], texts[2]], layers=[0])
    for rep, text in zip(reps, texts):
        inputs = rep.inputs["joint"]
        assert torch.equal(rep.masks["image"], inputs["input_ids"][0] == adapter.image_token_id)
        features = _features(adapter, inputs, "get_image_features", ("pixel_values", "image_grid_thw"))
        torch.testing.assert_close(rep["projector"], features, **TOL)
        _check_llm_stages(adapter, rep)
        _check_text_masks(adapter, rep, text)


def test_bad_visual_inputs_are_the_samples_error(load_tiny, clip, images) -> None:
    qwen, llava_next = load_tiny("qwen2_5_vl"), load_tiny("llava_next")
    with pytest.raises(AdapterInputError, match="takes no video"):
        llava_next.represent(clip, TEXT)
    with pytest.raises(AdapterInputError, match=r"2 images in one sample.*at most 1 image per"):
        llava_next.represent([images[0], images[1]], TEXT)
    with pytest.raises(AdapterInputError, match="empty list of images"):
        qwen.represent([], TEXT)
    with pytest.raises(AdapterInputError, match="video placeholder"):
        qwen.represent(clip, f"see {qwen.video_token}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny checkpoint's random-weights note
        limited = type(qwen)(qwen.model, qwen.processor, max_visual_tokens=10)
    with pytest.raises(AdapterInputError, match=r"24 video tokens, more than max_visual_tokens = 10"):
        limited.represent(clip, TEXT)
    assert limited.represent(pan("chelsea", 1, (56, 56))[0], TEXT)["projector"].shape[0] == 4
