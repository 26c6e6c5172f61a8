"""Audio data: the ``audio`` column of manifests, decoding through PyAV (every codec of the
bundled set), resampling and downmixing checked against signals of known content, the
duration limit, and each bad clip's reason."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from mm_align.data import BadSampleError, ManifestError, open_dataset
from mm_align.data.audio import AudioLimits, load_waveform
from tests.helpers import SAMPLE_AUDIO

RATE = 16_000


def write_audio(path: Path, channels: np.ndarray, rate: int, codec: str = "pcm_s16le") -> Path:
    """Encode ``channels`` (channels x samples, float in [-1, 1]) into ``path`` with PyAV."""
    layout = "mono" if channels.shape[0] == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        pcm = np.round(channels * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout=layout)
        frame.sample_rate = rate
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def tone(hz: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def test_every_bundled_clip_decodes_to_16k_mono_speech() -> None:
    rows = [json.loads(line) for line in (SAMPLE_AUDIO / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {Path(row["audio"]).suffix for row in rows} == {".flac", ".wav", ".ogg", ".mp3"}
    assert sum(path.stat().st_size for path in SAMPLE_AUDIO.iterdir()) < 1_000_000
    for row in rows:
        wave, notes = load_waveform(SAMPLE_AUDIO / row["audio"], AudioLimits(RATE))
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert 2.0 < notes["audio_seconds"] < 4.0 and notes["audio_seconds"] == round(wave.size / RATE, 4)
        assert 0.05 < float(np.abs(wave).max()) <= 1.0 and row["text"].strip()


def test_resampling_keeps_duration_and_pitch(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.wav", tone(440, 1.5, 44_100)[None], 44_100)
    wave, notes = load_waveform(path, AudioLimits(RATE))
    assert abs(wave.size - 1.5 * RATE) <= 32 and notes == {"audio_seconds": round(wave.size / RATE, 4)}
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    assert abs(np.argmax(spectrum) * RATE / wave.size - 440) < 2  # the tone, not a resampling artefact


def test_stereo_is_mixed_down_to_mono(tmp_path: Path) -> None:
    left, right = tone(300, 1.0, RATE), tone(1000, 1.0, RATE)
    wave, _ = load_waveform(write_audio(tmp_path / "s.wav", np.stack([left, right]), RATE), AudioLimits(RATE))
    spectrum = np.abs(np.fft.rfft(wave))
    peaks = sorted(np.argsort(spectrum)[-2:] * RATE / wave.size)
    assert peaks == pytest.approx([300, 1000], abs=2)  # both channels, at equal weight
    assert spectrum[300] == pytest.approx(spectrum[1000], rel=0.05)


def test_max_seconds_refuses_or_truncates(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "long.wav", tone(200, 3.0, RATE)[None], RATE)
    with pytest.raises(BadSampleError, match=r"longer than --max-audio-seconds 2 .*truncate"):
        load_waveform(path, AudioLimits(RATE, 2.0))
    wave, notes = load_waveform(path, AudioLimits(RATE, 2.0, "truncate"))
    assert wave.size == 2 * RATE and notes == {"audio_seconds": 2.0, "audio_truncated": True}
    full, _ = load_waveform(path, AudioLimits(RATE))
    np.testing.assert_array_equal(wave, full[: 2 * RATE])  # the clip's start, sample for sample
    assert load_waveform(path, AudioLimits(RATE, 3.5))[1] == {"audio_seconds": 3.0}


def test_limits_are_validated() -> None:
    for bad in ({"sampling_rate": 0}, {"sampling_rate": RATE, "max_seconds": 0},
                {"sampling_rate": RATE, "max_seconds": math.nan}, {"sampling_rate": RATE, "overflow": "cut"}):
        with pytest.raises(ValueError):
            AudioLimits(**bad)


def test_bad_clips_give_their_reason(tmp_path: Path) -> None:
    empty = tmp_path / "zero.wav"
    with wave.open(str(empty), "wb") as out:  # a valid header and no samples
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
    # A WAV whose format tag names no codec FFmpeg knows (0x7777).
    header = bytearray(write_audio(tmp_path / "x.wav", tone(200, 0.2, RATE)[None], RATE).read_bytes())
    header[20:22] = (0x7777).to_bytes(2, "little")
    (tmp_path / "codec.wav").write_bytes(bytes(header))
    (tmp_path / "text.wav").write_text("not audio at all " * 20)
    cases = {
        empty: "the audio clip is empty \\(0 samples\\)",
        tmp_path / "codec.wav": "unsupported audio codec|unreadable audio",
        tmp_path / "text.wav": "unreadable audio",
        tmp_path / "missing.wav": "not found",
        b"\x00" * 64: "unreadable audio",
        b"": "the audio file is empty \\(0 bytes\\)",
        None: "no audio given",
    }
    for ref, reason in cases.items():
        with pytest.raises(BadSampleError, match=reason):
            load_waveform(ref, AudioLimits(RATE))
    image = Path(__file__).resolve().parents[1] / "data" / "sample" / "coffee.jpg"
    with pytest.raises(BadSampleError, match="no audio stream"):
        load_waveform(image, AudioLimits(RATE))


def test_manifests_take_an_audio_column(tmp_path: Path) -> None:
    clip = SAMPLE_AUDIO / "cat.flac"
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"id": "a", "audio": str(clip), "text": "A cat."}) + "\n"
        + json.dumps({"id": "b", "audio": None, "text": "Nothing."}) + "\n")
    (tmp_path / "m.csv").write_text(f"id,audio,text\na,{clip},A cat.\n")
    for name in ("m.jsonl", "m.csv"):
        source = open_dataset(tmp_path / name)
        first = next(iter(source))
        assert first.audio == clip and first.image is None and first.modality == "audio" and first.audio_path == clip
        wave, notes = first.load_audio(AudioLimits(RATE))
        assert wave.size > RATE and notes["audio_seconds"] > 1
        with pytest.raises(BadSampleError, match="no image given"):
            first.load_image()
    missing = list(open_dataset(tmp_path / "m.jsonl"))[1]
    with pytest.raises(BadSampleError, match="no audio given"):
        missing.load_audio(AudioLimits(RATE))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"sound": "x.wav", "text": "t"}) + "\n")
    with pytest.raises(ManifestError, match="no 'image' column, nor 'images', 'video' or 'audio'"):
        open_dataset(tmp_path / "bad.jsonl")
    (tmp_path / "num.jsonl").write_text(json.dumps({"audio": 3, "text": "t"}) + "\n")
    with pytest.raises(ManifestError, match="file path or audio bytes"):
        open_dataset(tmp_path / "num.jsonl")


def test_fingerprint_covers_the_audio_bytes(tmp_path: Path) -> None:
    clip = tmp_path / "c.wav"
    write_audio(clip, tone(200, 0.5, RATE)[None], RATE)
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "c.wav", "text": "A tone."}) + "\n")
    before = open_dataset(tmp_path / "m.jsonl").fingerprint()
    write_audio(clip, tone(300, 0.5, RATE)[None], RATE)
    assert open_dataset(tmp_path / "m.jsonl").fingerprint() != before


def test_a_saved_dataset_with_an_audio_feature(tmp_path: Path) -> None:
    import datasets

    clips = [str(SAMPLE_AUDIO / "cat.flac"), str(SAMPLE_AUDIO / "rocket.ogg")]
    table = datasets.Dataset.from_dict({"audio": clips, "text": ["A cat.", "A rocket."], "id": ["c", "r"]})
    table.cast_column("audio", datasets.Audio()).save_to_disk(tmp_path / "saved")
    source = open_dataset(tmp_path / "saved")
    assert source.fmt == "save_to_disk" and [s.id for s in source] == ["c", "r"]
    for sample, clip in zip(source, clips):
        wave, _ = sample.load_audio(AudioLimits(RATE))
        np.testing.assert_array_equal(wave, load_waveform(Path(clip), AudioLimits(RATE))[0])
