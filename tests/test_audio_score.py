"""``score`` on an audio-language model: the bundled spoken set through the run folder, the
report and the export, with bad clips recorded with their reasons and the others scored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import pytest

from mm_align import api
from mm_align.rundir import load_run
from tests.helpers import SAMPLE_AUDIO


def _manifest(tmp_path: Path) -> Path:
    """The bundled set plus an empty file, a text file named .wav and a 5 s clip (over the
    2.5 s limit the tests set; the real clips are 2.6 to 3.4 s, so the limit cuts them too)."""
    rows = [json.loads(line) for line in (SAMPLE_AUDIO / "metadata.jsonl").read_text().splitlines()]
    for row in rows:
        shutil.copy(SAMPLE_AUDIO / row["audio"], tmp_path / row["audio"])
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("this is not audio " * 10)
    rows += [{"id": "empty", "audio": "empty.flac", "text": "Nothing."},
             {"id": "text", "audio": "notes.wav", "text": "A text file."}]
    path = tmp_path / "metadata.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
def test_score_an_audio_model_end_to_end(tmp_path: Path, tiny_checkpoints) -> None:
    data = _manifest(tmp_path)
    out = tmp_path / "run"
    options = {"batch_size": 4, "n_boot": 50, "progress": False, "max_audio_seconds": 3.0,
               "audio_overflow": "truncate"}
    result = api.score(str(tiny_checkpoints["qwen2_audio"]), str(data), out, controls=("shuffled",), **options)
    assert result.summary["n_samples"] == 8 and result.summary["n_errors"] == 2
    errors = {e["id"]: e["reason"] for e in result.errors}
    assert errors == {"empty": "the audio file is empty (0 bytes)", "text": errors["text"]}
    assert errors["text"].startswith("unreadable audio")
    by_id = {r["id"]: r for r in result.results}
    assert by_id["cat"]["audio"] == str((tmp_path / "cat.flac").absolute()) and "image" not in by_id["cat"]
    assert by_id["train"]["audio_truncated"] is True and by_id["train"]["audio_seconds"] == 3.0
    assert "audio_truncated" not in by_id["cat"] and by_id["cat"]["audio_seconds"] < 3.0
    provenance = result.summary["provenance"]
    assert provenance["modality"] == ["audio"]
    assert provenance["audio"] == {"sampling_rate": 16_000, "decoder": f"PyAV {av.__version__}", "max_seconds": 3.0,
                                   "overflow": "truncate"}
    run = load_run(out)
    assert "audio-language model" in (out / "report.html").read_text()
    from mm_align.pipeline.export import export_row

    assert export_row("run", run)["modality"] == "audio"
    assert (out / "controls" / "shuffled" / "summary.json").exists()

    # Refused instead of cut: the clips over the limit become errors with that reason.
    refused = api.score(str(tiny_checkpoints["qwen2_audio"]), str(data), **{**options, "audio_overflow": "refuse",
                                                                             "max_audio_seconds": 2.9})
    too_long = {e["id"] for e in refused.errors if "longer than --max-audio-seconds 2.9" in e["reason"]}
    assert too_long and too_long | {r["id"] for r in refused.results} | {"empty", "text"} == set(by_id) | {"empty", "text"}


def test_image_controls_are_refused_for_an_audio_model(tmp_path: Path, tiny_checkpoints) -> None:
    with pytest.raises(ValueError, match="rotate90 change images; an audio model"):
        api.score(str(tiny_checkpoints["qwen2_audio"]), str(SAMPLE_AUDIO / "metadata.jsonl"), progress=False,
                  controls=("rotate90",), limit=2)
