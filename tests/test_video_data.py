"""Video and several-image samples from manifests to a scored run: decoding (PyAV, folders of
frames), frame sampling, bad clips as the sample's error, what config.json, the records, the
summary, the report and the exports say."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from mm_align.data import BadSampleError, ManifestError, open_dataset
from mm_align.data.video import FrameSampling, load_video
from tests.clips import pan, pan_clip, write_clip


def _zero_length(path: Path) -> Path:
    """A WebM container with a video stream and no frame."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libvpx", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # writes the header; no frame follows
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for suffix in (".mp4", ".webm", ".mkv", ".gif"):
        pan_clip("chelsea", root / f"chelsea{suffix}", n_frames=10)
    frames = root / "frames"
    frames.mkdir()
    for number, image in enumerate(pan("coffee", 12)):
        image.save(frames / f"frame_{number}.jpg")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00 ftypisom" + bytes(200))
    _zero_length(root / "empty.webm")
    for name in ("astronaut", "rocket"):
        pan(name, 1, (96, 72))[0].save(root / f"{name}.png")
    return root


def test_uniform_sampling_follows_transformers(clips) -> None:
    from transformers.video_utils import VideoMetadata, default_sample_indices_fn

    for sampling in (FrameSampling(num_frames=4), FrameSampling(fps=2.0), FrameSampling(num_frames=3)):
        ours = sampling.indices(10, 4.0)
        theirs = default_sample_indices_fn(VideoMetadata(total_num_frames=10, fps=4.0), num_frames=sampling.num_frames,
                                           fps=sampling.fps)
        assert ours.tolist() == theirs.tolist()
    assert FrameSampling(num_frames=40).indices(10, 4.0).tolist() == list(range(10))  # all there is
    assert FrameSampling(fps=2.0, max_frames=3).indices(100, 4.0).tolist() == [0, 33, 66]


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".gif"])
def test_every_container_decodes_the_same_frames(clips, suffix) -> None:
    video = load_video(clips / f"chelsea{suffix}", FrameSampling(num_frames=4))
    assert video.frames.shape == (4, 84, 112, 3) and video.frames.dtype == np.uint8
    assert video.indices == (0, 2, 5, 7) and video.total_frames == 10 and video.fps == 4.0
    panned = [np.asarray(image).astype(float) for image in pan("chelsea", 10)]
    error = np.mean([np.abs(frame - panned[i]).mean() for frame, i in zip(video.frames, video.indices)])
    # Lossy codecs (H.264, VP8, GIF's 8-bit palette) stay close to the panned photo, and
    # closer than to the frames of the other end of the pan.
    assert error < 20
    assert error < np.mean([np.abs(frame - panned[9 - i]).mean() for frame, i in zip(video.frames, video.indices)])


def test_a_folder_of_frames_is_a_clip_in_natural_order(clips) -> None:
    video = load_video(clips / "frames", FrameSampling(num_frames=4))
    assert video.indices == (0, 3, 6, 9) and video.total_frames == 12
    np.testing.assert_array_equal(video.frames[1], np.asarray(load_video(clips / "frames", FrameSampling(
        num_frames=12)).frames[3]))
    assert len(load_video(clips / "frames", FrameSampling(fps=2.0))) == 12  # taken as sampled already


@pytest.mark.parametrize(("name", "reason"), [
    ("broken.mp4", "not a readable video"), ("empty.webm", "no frames"), ("missing.mp4", "not found")])
def test_bad_clips_are_the_samples_error(clips, name, reason) -> None:
    with pytest.raises(BadSampleError, match=reason):
        load_video(clips / name, FrameSampling(num_frames=4))


def _manifest(clips: Path, rows: list[dict]) -> Path:
    path = clips / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_manifest_columns(clips) -> None:
    source = open_dataset(_manifest(clips, [
        {"id": "v", "video": "chelsea.mp4", "text": "A cat."},
        {"id": "f", "video": "frames", "text": "A cup."},
        {"id": "i", "images": ["astronaut.png", "rocket.png"], "text": "Two photos."},
        {"id": "g", "image": "chelsea.gif", "text": "A clip in the image column."},
        {"id": "p", "image": "astronaut.png", "text": "One photo."},
    ]))
    samples = {s.id: s for s in source}
    assert {k: s.modality for k, s in samples.items()} == {"v": "video", "f": "video", "i": "images", "g": "video",
                                                          "p": "image"}
    assert samples["v"].media_paths == {"video": str(clips / "chelsea.mp4")}
    assert len(samples["i"].load_visual()) == 2
    with pytest.raises(ManifestError, match="give one of"):
        open_dataset(_manifest(clips, [{"video": "chelsea.mp4", "image": "astronaut.png", "text": "x"}]))
    with pytest.raises(ManifestError, match="must be a list"):
        open_dataset(_manifest(clips, [{"images": "astronaut.png", "text": "x"}]))
    bad = next(iter(open_dataset(_manifest(clips, [{"images": ["astronaut.png", "nope.png"], "text": "x"}]))))
    with pytest.raises(BadSampleError, match="image 2 of 2: image file not found"):
        bad.load_visual()


def test_fingerprint_covers_the_clip(clips, tmp_path) -> None:
    rows = [{"video": str(tmp_path / "c.mp4"), "text": "A cat."}]
    write_clip(pan("chelsea", 6), tmp_path / "c.mp4")
    first = open_dataset(_manifest(tmp_path, rows)).fingerprint()
    write_clip(pan("coffee", 6), tmp_path / "c.mp4")
    assert open_dataset(_manifest(tmp_path, rows)).fingerprint() != first


@pytest.mark.slow
def test_score_a_video_manifest(clips, tiny_checkpoints, tmp_path) -> None:
    from mm_align import score
    from mm_align.pipeline.export import export_rows
    from mm_align.rundir import load_run

    manifest = _manifest(clips, [
        {"id": "mp4", "video": "chelsea.mp4", "text": "A cat looks at the camera."},
        {"id": "webm", "video": "chelsea.webm", "text": "The cat again."},
        {"id": "frames", "video": "frames", "text": "A cup of coffee."},
        {"id": "broken", "video": "broken.mp4", "text": "Nothing."},
        {"id": "empty", "video": "empty.webm", "text": "Nothing."},
    ])
    out = tmp_path / "run"
    result = score(model=str(tiny_checkpoints["qwen2_5_vl"]), data=str(manifest), out=str(out), num_frames=4,
                   batch_size=2, n_boot=50, progress=False)
    assert sorted(r["id"] for r in result.results) == ["frames", "mp4", "webm"]
    reasons = {e["id"]: e["reason"] for e in result.errors}
    assert "not a readable video" in reasons["broken"] and "no frames" in reasons["empty"]
    record = next(r for r in result.results if r["id"] == "mp4")
    assert record["modality"] == "video" and record["frames"] == [0, 2, 5, 7]
    assert record["video"] == str(clips / "chelsea.mp4") and record["tokens"]["image"] == 24
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["num_frames"], config["fps"]) == (4, None)
    assert result.summary["provenance"]["modality"] == ["video"]
    row = export_rows({"run": load_run(out)})[0]
    assert row["modality"] == "video"
    assert "Video reduction ratio" in (out / "report.html").read_text()


@pytest.mark.slow
def test_family_default_frames_and_the_visual_token_limit(clips, tiny_checkpoints, tmp_path) -> None:
    from mm_align import score

    manifest = _manifest(clips, [{"id": "mp4", "video": "chelsea.mp4", "text": "A cat."},
                                 {"id": "two", "images": ["astronaut.png", "rocket.png"], "text": "Two."}])
    result = score(model=str(tiny_checkpoints["qwen2_5_vl"]), data=str(manifest), out=str(tmp_path / "run"),
                   max_visual_tokens=30, n_boot=50, progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (config["num_frames"], config["fps"]) == (None, 2.0)  # Qwen-VL's own default
    # 10 frames at 4 fps, 2 per second: 5 frames, padded to 6 by the processor: 3 x 12 tokens.
    assert [r["id"] for r in result.results] == ["two"]
    assert "36 video tokens, more than max_visual_tokens = 30" in result.errors[0]["reason"]
    assert result.summary["provenance"]["modality"] == ["images", "video"]
