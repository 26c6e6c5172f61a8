"""Bad inputs that must cost one sample, never the run: a text or an id that is not valid
Unicode, an in-memory image that is closed or empty, images of every PIL mode handed to an
adapter, and a ``--sample`` larger than the data. Each run ends with exactly the good samples
scored and exactly the bad ones recorded, with their line or index and reason."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mm_align.data import BadSampleError, load_rgb, open_dataset
from mm_align.data.memory import open_memory
from tests.helpers import FLOAT32, SAMPLE

SURROGATE, LOW_SURROGATE = "\ud800", "\udfff"


def _manifest(path: Path) -> Path:
    """Four records: good, a text with a lone surrogate (line 2), an id with one (line 3), good.
    Written as JSON escapes, the way another tool would leave them."""
    rows = [("a", "coffee.jpg", "A cup of coffee."), ("b", "chelsea.jpg", f"lone {SURROGATE} surrogate"),
            (f"c{LOW_SURROGATE}", "chelsea.jpg", "A cat."), ("d", "clock.jpg", "A clock.")]
    path.write_text("".join(json.dumps({"id": i, "image": str(SAMPLE / f), "text": t}) + "\n" for i, f, t in rows))
    return path


def _ids(records: list[dict]) -> set[str]:
    return {r["id"] for r in records}


def test_unencodable_text_or_id_is_that_samples_defect_and_the_fingerprint_never_raises(tmp_path) -> None:
    source = open_dataset(_manifest(tmp_path / "m.jsonl"))
    assert len(source.fingerprint()) == 64
    samples = list(source)
    assert [s.id for s in samples] == ["a", "b", "c\\udfff", "d"]  # the bad id kept, escaped
    with pytest.raises(BadSampleError, match=r"^line 2: the text holds a lone surrogate U\+D800 at character 6"):
        samples[1].check_text()
    with pytest.raises(BadSampleError, match=r"^line 3: the id holds a lone surrogate U\+DFFF at character 2"):
        samples[2].load()
    assert samples[0].check_text() == "A cup of coffee." and samples[3].check_text() == "A clock."
    # Without ids, the content ids of a bad text are computed too (hashing never raises).
    no_ids = tmp_path / "no_ids.jsonl"
    no_ids.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "id"}) + "\n"
                              for line in (tmp_path / "m.jsonl").read_text().splitlines()))
    assert [s.problem is not None for s in open_dataset(no_ids)] == [False, True, False, False]
    # Another surrogate gives another fingerprint: the text still enters the hash.
    other = tmp_path / "other.jsonl"
    other.write_text((tmp_path / "m.jsonl").read_text().replace("\\ud800", "\\ud801"))
    assert open_dataset(other).fingerprint() != source.fingerprint()


def test_a_closed_or_empty_in_memory_image_is_that_pairs_error(images) -> None:
    closed = images[1].copy()
    closed.close()
    source = open_memory([(images[0], "ok"), (closed, "closed"), (Image.new("RGB", (0, 0)), "empty"),
                          (images[2], "ok")])
    assert len(source.fingerprint()) == 64
    with pytest.raises(BadSampleError, match=r"^item 1: the image cannot be read \(ValueError: Operation on closed"):
        source[1].load()
    with pytest.raises(BadSampleError, match="too small"):
        source[2].load()
    assert source[0].load()[1] == "ok" and source[3].load()[1] == "ok"


@pytest.mark.slow
def test_a_lone_surrogate_costs_its_sample_only(tmp_path, load_tiny) -> None:
    from tests.test_faults import score

    run = tmp_path / "run"
    score(load_tiny("llava"), _manifest(tmp_path / "m.jsonl"), run)
    results = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    errors = {e["id"]: e for e in map(json.loads, (run / "errors.jsonl").read_text().splitlines())}
    assert _ids(results) == {"a", "d"} and set(errors) == {"b", "c\\udfff"}
    assert errors["b"]["reason"].startswith("line 2: the text holds a lone surrogate U+D800")
    assert errors["c\\udfff"]["reason"].startswith("line 3: the id holds a lone surrogate U+DFFF")
    assert not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_a_closed_image_costs_its_pair_only(load_tiny, images) -> None:
    from mm_align import score

    closed = images[1].copy()
    closed.close()
    pairs = [(images[0], "An astronaut."), (closed, "A cat."), (Image.new("RGB", (0, 0)), "Nothing."),
             (images[2], "A cup of coffee.")]
    result = score(load_tiny("llava"), pairs, progress=False)
    assert _ids(result.results) == {"0", "3"} and _ids(result.errors) == {"1", "2"}
    reasons = {e["id"]: e["reason"] for e in result.errors}
    assert reasons["1"].startswith("item 1: the image cannot be read") and "too small" in reasons["2"]


@pytest.mark.slow
def test_sample_larger_than_the_data_says_how_many_there_are(tmp_path, load_tiny) -> None:
    from tests.test_faults import score

    manifest = tmp_path / "three.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"s{i}", "image": str(SAMPLE / f), "text": f"Photo {i}."}) + "\n"
                                for i, f in enumerate(("coffee.jpg", "chelsea.jpg", "clock.jpg"))))
    with pytest.warns(UserWarning, match=r"--sample 100 asks for more samples than the data set holds: it has 3"):
        score(load_tiny("llava"), manifest, tmp_path / "run", sample=100)
    scored = [json.loads(line)["id"] for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert sorted(scored) == ["s0", "s1", "s2"] and not (tmp_path / "run" / "errors.jsonl").read_text()


def _modes(photo: Image.Image) -> dict[str, Image.Image]:
    """The photo in every mode the issue names; I;16 spans the full 16-bit range."""
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    wide = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype("<u2")
    return {"L": photo.convert("L"), "LA": rgba.convert("LA"), "P": photo.convert("P"), "RGBA": rgba,
            "I;16": Image.frombuffer("I;16", photo.size, wide.tobytes(), "raw", "I;16", 0, 1),
            "CMYK": photo.convert("CMYK")}


def _as_file(image: Image.Image) -> bytes:
    """The image saved as a lossless file (TIFF keeps every one of these modes)."""
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")
    return buffer.getvalue()


@pytest.mark.slow
def test_every_family_takes_every_image_mode(family, load_tiny, images) -> None:
    """``represent`` of an L, LA, P, RGBA, I;16 or CMYK image equals ``represent`` of the RGB
    image the pipeline decodes from the same pixels saved as a file (LFM2-VL refused L and
    RGBA before)."""
    adapter = load_tiny(family)
    for mode, image in _modes(images[0]).items():
        assert image.mode == mode
        got = adapter.represent(image, "An astronaut.")
        want = adapter.represent(load_rgb(_as_file(image)), "An astronaut.")
        for stage in ("vision", "projector", "image", "text", "joint"):
            torch.testing.assert_close(got[stage], want[stage], rtol=FLOAT32, atol=FLOAT32, msg=f"{mode} {stage}")
