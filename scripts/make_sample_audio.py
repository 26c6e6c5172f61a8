"""Regenerate ``data/sample_audio/``: short spoken sentences with their transcripts, as a JSONL
manifest (``id``, ``audio``, ``text``) beside the clips.

The speech is SYNTHETIC: spoken by eSpeak NG (Debian package ``espeak-ng``; no registry
package ships real recorded speech with transcripts), so it is clear, robotic, and the same
on every run of the same eSpeak NG version. Each clip is resampled to 16 kHz mono by PyAV (the
decoder mm-align reads audio with) and stored as FLAC, one as WAV, one as Ogg/Opus and one as MP3, so
that the demo and the tests read four containers and codecs. The folder stays well under a megabyte.

Usage: ``python scripts/make_sample_audio.py [OUT_DIR]`` (default ``data/sample_audio``);
needs ``espeak-ng`` on the PATH (``apt-get install espeak-ng``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import av

RATE = 16_000
VOICE, WORDS_PER_MINUTE = "en-us", 165

# id -> (file suffix, the sentence spoken, which is also its transcript).
SAMPLES: dict[str, tuple[str, str]] = {
    "astronaut": (".flac", "An astronaut in a white suit holds a helmet."),
    "cat": (".flac", "A tabby cat with green eyes looks at the camera."),
    "coffee": (".wav", "A cup of coffee stands on a red saucer."),
    "rocket": (".ogg", "A rocket waits on the launch pad before dawn."),
    "weather": (".flac", "Tomorrow will be windy with light rain in the afternoon."),
    "numbers": (".mp3", "Seven, three, nine, one, four."),
    "train": (".flac", "The next train to the city leaves from platform two."),
    "question": (".flac", "What colour is the bus parked next to the tree?"),
}
_CODECS = {".flac": ("flac", "s16"), ".wav": ("pcm_s16le", "s16"), ".ogg": ("libopus", "s16"),
           ".mp3": ("libmp3lame", "s16p")}


def speak(text: str, wav: Path) -> None:
    """eSpeak NG's rendering of ``text`` as a WAV file (22.05 kHz mono)."""
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(wav), text], check=True)


def transcode(source: Path, target: Path) -> None:
    """``source`` resampled to 16 kHz mono, written to ``target`` in the codec of its suffix."""
    codec, sample_format = _CODECS[target.suffix]
    resampler = av.AudioResampler(format=sample_format, layout="mono", rate=RATE)
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream(codec, rate=RATE, layout="mono")
        for frame in inp.decode(audio=0):
            for chunk in resampler.resample(frame):
                out.mux(stream.encode(chunk))
        for chunk in resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sample_id, (suffix, text) in SAMPLES.items():
            wav = Path(tmp) / f"{sample_id}.wav"
            speak(text, wav)
            transcode(wav, out_dir / f"{sample_id}{suffix}")
            rows.append({"id": sample_id, "audio": f"{sample_id}{suffix}", "text": text})
    manifest = out_dir / "metadata.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    size = sum(path.stat().st_size for path in out_dir.iterdir())
    print(f"wrote {len(rows)} clips and {manifest.name} to {out_dir} ({size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/sample_audio"))
