"""Audio-language families on tiny random-weight checkpoints and the bundled spoken clips,
checked against computations independent of the adapter's hooks: transformers' own
``output_hidden_states``, its ``get_audio_features``, and the connector module applied by hand."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from mm_align.adapters import STAGES, AdapterInputError, adapter_class
from mm_align.adapters.audio import GenericAudioAdapter
from tests.helpers import FLOAT32, FLOAT32_RECOMPUTED, families
from tests.test_adapters_common import hidden_states, image_only_inputs

AUDIO_FAMILIES = families("audio")
FP32 = {"rtol": FLOAT32_RECOMPUTED, "atol": FLOAT32_RECOMPUTED}
PAIRS = [(f, p) for f in AUDIO_FAMILIES for p in adapter_class(f).prompt_styles]
_BATCHES: dict[tuple[str, str], tuple] = {}


def test_four_audio_families_are_served() -> None:
    assert {"qwen2_audio", "audioflamingo3", "glmasr", "qwen2_5_omni_thinker"} <= set(AUDIO_FAMILIES)
    for family in AUDIO_FAMILIES:
        cls = adapter_class(family)
        assert issubclass(cls, GenericAudioAdapter) and cls.modality == "audio"
        assert "audio encoder" in cls.taps()["vision"]


@pytest.fixture(scope="module", params=PAIRS, ids=lambda fp: "-".join(fp))
def batch(request, load_tiny, clips):
    family, prompt = request.param
    if (family, prompt) not in _BATCHES:
        adapter = load_tiny(family, prompt=prompt)
        audio, texts = zip(*clips)
        _BATCHES[family, prompt] = adapter, adapter.represent_batch(list(audio), list(texts), layers=[0, 1])
    return _BATCHES[family, prompt]


def _features_of_transformers(adapter, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """What the model's own ``get_audio_features`` returns for one sample, as rows."""
    method = adapter.model.get_audio_features
    wanted = inspect.signature(method).parameters
    with torch.inference_mode():
        out = method(**{key: value for key, value in inputs.items() if key in wanted and key != "input_ids"})
    rows = out.pooler_output if out.pooler_output is not None else out.last_hidden_state
    return rows.reshape(-1, rows.shape[-1])


@pytest.mark.slow
def test_llm_stages_equal_output_hidden_states(batch) -> None:
    adapter, reps = batch
    for rep in reps:
        joint = hidden_states(adapter, rep.inputs["joint"])
        text = hidden_states(adapter, rep.inputs["text"])
        assert len(joint) == adapter.num_hidden_states == 3 and rep.layers == (0, 1, 2)
        for layer in (0, 1, 2):
            torch.testing.assert_close(rep.layer("image", layer), joint[layer][rep.masks["image"]], **FP32)
            torch.testing.assert_close(rep.layer("joint", layer), joint[layer][rep.masks["joint"]], **FP32)
            torch.testing.assert_close(rep.layer("text", layer), text[layer][rep.masks["text"]], **FP32)
        # The projector rows are what enters the LLM at the audio tokens (all of them: the
        # masks leave out position 0, the projector does not).
        is_audio = rep.inputs["joint"]["input_ids"][0] == adapter.image_token_id
        torch.testing.assert_close(joint[0][is_audio], rep["projector"], **FP32)


@pytest.mark.slow
def test_audio_stage_is_the_audio_heard_alone(batch) -> None:
    adapter, reps = batch
    for rep in reps:
        alone_inputs = image_only_inputs(rep)
        alone = hidden_states(adapter, alone_inputs)[-1][rep.masks["image"][: alone_inputs["input_ids"].shape[1]]]
        torch.testing.assert_close(rep["image"], alone, **FP32)


@pytest.mark.slow
def test_projector_equals_get_audio_features_and_vision_is_its_connector_input(batch) -> None:
    adapter, reps = batch
    for rep in reps:
        if hasattr(adapter.model, "get_audio_features"):  # Qwen2-Audio has none: the test above
            torch.testing.assert_close(rep["projector"], _features_of_transformers(adapter, rep.inputs["joint"]),
                                       **FP32)
        with torch.inference_mode():
            mapped = adapter.projector(rep["vision"])
        torch.testing.assert_close(mapped, rep["projector"], **FP32)
        assert rep["vision"].shape[0] == rep["projector"].shape[0]


@pytest.mark.slow
def test_masks_are_exact(batch, clips) -> None:
    adapter, reps = batch
    tokenizer = adapter.processor.tokenizer
    for rep, (_, transcript) in zip(reps, clips):
        joint_ids = rep.inputs["joint"]["input_ids"][0]
        text_ids = rep.inputs["text"]["input_ids"][0]
        is_audio = joint_ids == adapter.image_token_id
        assert int(is_audio.sum()) == rep["projector"].shape[0] > 10
        # Position 0 is never counted (a plain prompt without BOS begins with an audio token).
        assert torch.equal(rep.masks["image"], is_audio & (torch.arange(len(joint_ids)) > 0))
        assert int(rep.masks["image"].sum()) == rep["image"].shape[0]
        # The transcript's tokens, with position 0 where the text pass begins with it (no BOS).
        text_tokens = rep.masks["text"].clone()
        if tokenizer.decode(text_ids[text_tokens]) != transcript:
            text_tokens[0] = True
        assert tokenizer.decode(text_ids[text_tokens]) == transcript
        text_in_joint = rep.masks["joint"] & ~rep.masks["image"]
        assert tokenizer.decode(joint_ids[text_in_joint]) == transcript
        for special in tokenizer.all_special_ids:
            assert special not in text_ids[rep.masks["text"]].tolist()


@pytest.mark.slow
def test_longer_clips_get_more_audio_tokens(batch, clips) -> None:
    _, reps = batch
    seconds = [audio.shape[0] / 16_000 for audio, _ in clips]
    tokens = [rep["projector"].shape[0] for rep in reps]
    assert sorted(range(4), key=lambda i: seconds[i]) == sorted(range(4), key=lambda i: (tokens[i], seconds[i]))


@pytest.mark.slow
@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_batch_of_4_equals_one_at_a_time(family, load_tiny, clips) -> None:
    adapter = load_tiny(family)
    audio, texts = zip(*clips)
    batched = adapter.represent_batch(list(audio), list(texts), layers=[1])
    for clip, text, rep in zip(audio, texts, batched):
        single = adapter.represent(clip, text, layers=[1])
        for stage in STAGES:
            torch.testing.assert_close(rep[stage], single[stage], rtol=FLOAT32, atol=FLOAT32)
        torch.testing.assert_close(rep.layer("joint", 1), single.layer("joint", 1), rtol=FLOAT32, atol=FLOAT32)
        for name in ("joint", "text"):
            for key, value in single.inputs[name].items():
                assert torch.equal(rep.inputs[name][key], value)


@pytest.mark.slow
@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_every_stage_has_a_spectrum_and_the_untrained_llm_keeps_the_audio_stages(family, load_tiny, clips) -> None:
    from mm_align.metrics import erank

    adapter = load_tiny(family)
    audio, text = clips[0]
    trained = adapter.represent(audio, text)
    assert all(erank(trained[stage]) > 1.5 for stage in STAGES)
    with adapter.untrained_llm(seed=0) as untrained:
        fresh = untrained.represent(audio, text)
    for stage in ("vision", "projector"):
        torch.testing.assert_close(fresh[stage], trained[stage], rtol=0, atol=0)
    assert not torch.allclose(fresh["joint"], trained["joint"])


@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_bad_clips_raise_clear_errors(family, load_tiny, clips) -> None:
    adapter = load_tiny(family)
    audio, text = clips[0]
    cases = [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 800), dtype=np.float32), "mono"),
        (np.zeros(800, dtype=np.int16), "finite float"),
        (np.full(800, np.nan, dtype=np.float32), "finite float"),
        ("clip.wav", "waveform"),
        ([audio, audio], "2 audio clips in one sample"),
    ]
    for bad, message in cases:
        with pytest.raises(AdapterInputError, match=message):
            adapter.represent(bad, text)
    with pytest.raises(AdapterInputError, match="placeholder"):
        adapter.represent(audio, f"say {adapter.image_token} now")
    with pytest.raises(AdapterInputError, match="empty"):
        adapter.represent(audio, " ")
    long = np.zeros(16_000 * 4 + 1, dtype=np.float32)  # the tiny window is 4 s
    with pytest.raises(AdapterInputError, match=r"lasts 4.00 s, longer than the .* window of 4 s"):
        adapter.represent(long, text)
    assert adapter.represent(long[:-1], text)["projector"].shape[0] > 0


@pytest.mark.slow
@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_tiny_checkpoint_is_marked_and_runs_in_transformers(family, tiny_checkpoints, clips) -> None:
    from transformers import AutoProcessor

    path = tiny_checkpoints[family]
    config = json.loads((path / "config.json").read_text())
    assert config["mm_align_tiny"] == "RANDOM WEIGHTS - for smoke tests only" and config["model_type"] == family
    model = adapter_class(family).model_class.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    assert processor.feature_extractor.sampling_rate == 16_000
    inputs = processor(text=[processor.audio_token + "hi"], audio=[clips[0][0]], sampling_rate=16_000,
                       return_tensors="pt")
    with torch.inference_mode():
        assert model(**inputs).logits.shape[:2] == inputs["input_ids"].shape
