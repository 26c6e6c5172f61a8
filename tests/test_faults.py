"""Bad inputs and faults: special files, huge texts, odd images, malformed data, bad projector
files, refused run directories, runs killed at several points. Each run ends with every
sample of its manifest recorded exactly once (scored or an error), and nothing foreign."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from mm_align.cli import main
from mm_align.config import ScoreConfig
from mm_align.data import ImageRef, load_rgb, open_dataset
from mm_align.data.files import bounded_digest, open_regular
from mm_align.data.images import ImageLimits
from mm_align.rundir import LOCK, OWNER, RunDirError, load_run
from tests.helpers import FLOAT64, SAMPLE, read_jsonl, read_summary

PHOTO = SAMPLE / "coffee.jpg"


def score(adapter, data: Path, out: Path, **options):
    """``mm_align.score`` without its HTML report (seconds of plotting per run)."""
    from mm_align.pipeline.score import run_score

    config = ScoreConfig(model=adapter.model.name_or_path, data=str(data), out=str(out),
                         progress=False, **options)
    return run_score(config, model=adapter)


def _manifest(path: Path, rows: list[tuple[str, ImageRef | str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "image": str(img), "text": t}) + "\n" for i, img, t in rows))
    return path


def _each_once(run: Path, manifest: Path | list[str]) -> tuple[dict, dict]:
    """(results by id, errors by id) of ``run``, after checking that together they hold every
    id of ``manifest`` exactly once and nothing else."""
    want = manifest if isinstance(manifest, list) else [r["id"] for r in read_jsonl(manifest)]
    results, errors = read_jsonl(run / "results.jsonl"), read_jsonl(run / "errors.jsonl")
    got = Counter(r["id"] for r in (*results, *errors))
    assert got == Counter(want), f"doubled or lost: {got - Counter(want)} / {Counter(want) - got}"
    return {r["id"]: r for r in results}, {e["id"]: e for e in errors}


@contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a blocked read."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s: a hang")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- special files -------------------------------------------------------------------------


def test_fifo_device_and_folder_are_bad_samples_never_a_hang(tmp_path, load_tiny) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "link.jpg").symlink_to(tmp_path / "pipe.jpg")
    manifest = _manifest(tmp_path / "m.jsonl", [
        ("good", PHOTO, "A cup of coffee."), ("fifo", tmp_path / "pipe.jpg", "A named pipe."),
        ("zero", "/dev/zero", "An endless device."), ("folder", tmp_path / "folder.jpg", "A folder."),
        ("link", tmp_path / "link.jpg", "A link to the pipe."), ("good2", SAMPLE / "chelsea.jpg", "A cat."),
    ])
    with _deadline(60):  # fingerprint and decoding would block forever on the pipe and device
        score(load_tiny("llava"), manifest, tmp_path / "run", batch_size=4)
    results, errors = _each_once(tmp_path / "run", manifest)
    assert set(results) == {"good", "good2"}
    for sample_id, kind in (("fifo", "FIFO"), ("link", "FIFO"), ("zero", "character device"),
                            ("folder", "folder")):
        assert errors[sample_id]["stage"] == "load"
        assert f"is a {kind}" in errors[sample_id]["reason"]


class _Counting:
    """A file object that counts the bytes read through it."""

    def __init__(self, fh) -> None:
        self.fh, self.read_bytes = fh, 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.read_bytes += len(data)
        return data

    def seek(self, *args) -> int:
        return self.fh.seek(*args)

    def fileno(self) -> int:
        return self.fh.fileno()


def test_fingerprint_reads_a_bounded_number_of_bytes(tmp_path) -> None:
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(8 << 30)  # a sparse 8 GiB file: no disk used
    with open_regular(big) as f:
        counting = _Counting(f)
        digest = bounded_digest(counting)
    assert counting.read_bytes <= 64 << 20
    with open(big, "r+b") as f:
        f.truncate((8 << 30) + 1)
    with open_regular(big) as f:
        assert bounded_digest(f) != digest  # the size enters
    with open_regular(PHOTO) as f:  # small files: the plain sha256 of the bytes, as before
        import hashlib

        assert bounded_digest(f) == hashlib.sha256(PHOTO.read_bytes()).digest()


# ---- texts beyond the model's context ---------------------------------------------------------


@pytest.mark.slow
def test_a_text_beyond_the_context_is_refused_or_truncated_as_asked(tmp_path, load_tiny) -> None:
    adapter = load_tiny("llava")
    huge = "The cup stands on a saucer next to a spoon. " * 2500  # ~25k tokens; context 1024
    manifest = _manifest(tmp_path / "m.jsonl", [("long", PHOTO, huge), ("short", PHOTO, "A cup of coffee.")])
    score(adapter, manifest, tmp_path / "refuse")
    results, errors = _each_once(tmp_path / "refuse", manifest)
    assert errors["long"]["stage"] == "load" and "too long" in errors["long"]["reason"]
    assert "max_text_tokens = 1024" in errors["long"]["reason"] and "--text-overflow truncate" in errors["long"]["reason"]
    assert "truncated" not in results["short"]

    score(adapter, manifest, tmp_path / "cut", text_overflow="truncate", max_text_tokens=40)
    results, errors = _each_once(tmp_path / "cut", manifest)
    long = results["long"]
    assert long["truncated"] is True and long["text_tokens"] > 20_000
    assert 38 <= long["text_tokens_kept"] <= 40 and huge.startswith(long["text"]) and len(long["text"]) < 300
    assert long["tokens"]["text"] <= 40 and "truncated" not in results["short"]
    identity = json.loads((tmp_path / "cut" / "config.json").read_text())["identity"]
    assert identity["text_overflow"] == "truncate" and identity["max_text_tokens"] == 40
    with pytest.raises(RunDirError, match="text_overflow"):  # a resume may not mix the two
        score(adapter, manifest, tmp_path / "cut", resume=True, max_text_tokens=40)


# ---- odd images ------------------------------------------------------------------------------


@pytest.mark.slow
def test_strips_extreme_aspect_ratios_and_oversized_images(tmp_path, load_tiny) -> None:
    photo = Image.open(PHOTO).convert("RGB")
    photo.resize((1, 500)).save(tmp_path / "strip1.png")
    photo.resize((1000, 2)).save(tmp_path / "strip2.png")
    Image.new("RGB", (300_000, 2), (90, 60, 30)).save(tmp_path / "ribbon.png")
    photo.resize((400, 300)).save(tmp_path / "big.png")
    photo.resize((120, 80)).save(tmp_path / "good.png")
    manifest = _manifest(tmp_path / "m.jsonl", [
        ("strip1", tmp_path / "strip1.png", "A one pixel wide strip."),
        ("strip2", tmp_path / "strip2.png", "A strip five hundred times wider than tall."),
        ("ribbon", tmp_path / "ribbon.png", "A 300000 x 2 ribbon."),
        ("big", tmp_path / "big.png", "A cup of coffee, larger than max_pixels."),
        ("good", tmp_path / "good.png", "A cup of coffee."),
    ])
    adapter = load_tiny("llava")
    score(adapter, manifest, tmp_path / "refuse", max_pixels=20_000)
    results, errors = _each_once(tmp_path / "refuse", manifest)
    assert set(results) == {"good"} and "too small" in errors["strip1"]["reason"]
    for sample_id in ("strip2", "ribbon"):
        assert "aspect ratio is too extreme" in errors[sample_id]["reason"]
    assert "too large" in errors["big"]["reason"] and "--resize-to-max-pixels" in errors["big"]["reason"]

    score(adapter, manifest, tmp_path / "resize", max_pixels=20_000, resize_to_max_pixels=True)
    results, errors = _each_once(tmp_path / "resize", manifest)
    assert set(results) == {"big", "good"} and results["big"]["original_size"] == [400, 300]
    assert "original_size" not in results["good"]
    small = load_rgb(tmp_path / "big.png", limits=ImageLimits(20_000, resize=True))
    assert small.width * small.height <= 20_000 and small.size == (163, 122)  # 4:3 kept
    assert small.info["original_size"] == (400, 300)


@pytest.mark.slow
def test_a_model_stage_error_is_recorded_under_the_samples_own_id(tmp_path, load_tiny) -> None:
    """Qwen's processor refuses aspect ratios above 200 (allowed here up to 1000): the failing
    sample is isolated from its batch and its reason does not name a place in a batch."""
    Image.open(PHOTO).convert("RGB").resize((600, 2)).save(tmp_path / "wide.png")
    manifest = _manifest(tmp_path / "m.jsonl", [
        ("a", PHOTO, "A cup of coffee."), ("wide", tmp_path / "wide.png", "A strip."),
        ("b", SAMPLE / "chelsea.jpg", "A cat."),
    ])
    score(load_tiny("qwen2_5_vl"), manifest, tmp_path / "run", batch_size=3, max_aspect_ratio=1000)
    results, errors = _each_once(tmp_path / "run", manifest)
    assert set(results) == {"a", "b"} and errors["wide"]["stage"] == "model"
    reason = errors["wide"]["reason"]
    assert "aspect" in reason and not reason.split(": ", 1)[1].startswith("sample ")


# ---- refused before any model loads ------------------------------------------------------------


@pytest.fixture
def no_model_load(monkeypatch):
    """Make loading a model a test failure: every refusal must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")
    monkeypatch.setattr("mm_align.pipeline.score.load_vlm", refuse)


def _one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()  # what fixtures printed (a tiny checkpoint built on first use)
    assert main(argv) == 1
    err = capsys.readouterr().err
    # a library's warning (torch.load on a pickle) is its own one-line "mm-align: warning:"
    lines = [line for line in err.strip().splitlines() if not line.startswith("mm-align: warning:")]
    assert len(lines) == 1 and lines[0].startswith("mm-align: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, load_tiny) -> Path:
    """A finished two-sample run of the tiny LLaVA checkpoint."""
    run = tmp_path_factory.mktemp("finished") / "run"
    score(load_tiny("llava"), SAMPLE, run, limit=2)
    return run


def test_bad_data_and_options_are_one_line_errors_before_the_model_loads(
    tmp_path, tiny_checkpoints, capsys, no_model_load
) -> None:
    base = ["score", "--model", str(tiny_checkpoints["llava"]), "--no-progress"]
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    rows = "".join(f"{PHOTO},caption {i}\n" for i in range(400))
    (tmp_path / "latin1.csv").write_bytes(b"image,text\n" + rows.encode() + b"%s,caf\xe9\n" % str(PHOTO).encode())
    cases = {
        ("--data", str(tmp_path / "empty.jsonl")): "has no samples",
        ("--data", str(tmp_path / "blank.jsonl"), "--limit", "5"): "has no samples",
        ("--data", str(tmp_path / "latin1.csv")): "latin1.csv:402: not UTF-8",
        ("--data", str(SAMPLE), "--layers", ""): "layers takes 'all' or comma-separated integers",
        ("--data", str(SAMPLE), "--max-pixels", "0"): "max_pixels must be >= 1",
        ("--data", str(SAMPLE), "--max-text-tokens", "0"): "max_text_tokens must be >= 1",
        ("--data", str(SAMPLE), "--max-aspect-ratio", "0.5"): "max_aspect_ratio must be >= 1",
    }
    for i, (args, words) in enumerate(cases.items()):
        assert words in _one_line_error(capsys, [*base, *args, "--out", str(tmp_path / f"r{i}")])
        assert not (tmp_path / f"r{i}" / "config.json").exists()


@pytest.mark.slow
def test_bad_projector_files_are_one_line_errors_before_the_model_loads(
    tmp_path, tiny_checkpoints, load_tiny, capsys, no_model_load
) -> None:
    good = {k: v.clone() for k, v in load_tiny("llava").projector.state_dict().items()}
    save_file({k: v.to(torch.int64) for k, v in good.items()}, str(tmp_path / "int64.safetensors"))
    save_file(good, str(tmp_path / "cut.safetensors"))
    data = (tmp_path / "cut.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.bin").write_bytes(b"\x80\x04not a pickle at all")
    torch.save([1, 2, 3], tmp_path / "list.bin")
    base = ["score", "--model", str(tiny_checkpoints["llava"]), "--data", str(SAMPLE), "--no-progress"]
    cases = {"int64.safetensors": "must be floating point, not linear_1.bias (int64)",
             "cut.safetensors": "not a readable safetensors file",
             "garbage.bin": "not a readable PyTorch state dict",
             "list.bin": "does not hold a state dict of tensors",
             "nowhere.bin": "projector file not found"}
    for i, (name, words) in enumerate(cases.items()):
        line = _one_line_error(capsys, [*base, "--projector", str(tmp_path / name), "--out", str(tmp_path / f"r{i}")])
        assert words in line and name in line


@pytest.mark.slow
def test_run_directories_that_are_not_ours_are_refused_before_the_model_loads(
    tmp_path, tiny_checkpoints, finished, capsys, no_model_load
) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(PHOTO.read_bytes())
    (tmp_path / "orphan").mkdir()
    shutil.copy(finished / "results.jsonl", tmp_path / "orphan" / "results.jsonl")
    (tmp_path / "file").write_text("not a folder")
    base = ["score", "--model", str(tiny_checkpoints["llava"]), "--data", str(SAMPLE), "--limit", "2",
            "--no-progress"]
    cases = {
        ("--out", str(tmp_path / "photos")): "is not empty and is not an mm-align run",
        ("--out", str(tmp_path / "orphan"), "--resume"): "holds results.jsonl but no config.json",
        ("--out", str(tmp_path / "file")): "is a file, not a run directory",
        ("--out", str(finished)): "already holds a run; pass --resume",
        ("--out", str(finished), "--resume", "--max-pixels", "1000"): "max_pixels: 50000000 -> 1000",
    }
    for args, words in cases.items():
        assert words in _one_line_error(capsys, [*base, *args])
    assert read_jsonl(tmp_path / "orphan" / "results.jsonl") == read_jsonl(finished / "results.jsonl")
    assert sorted(p.name for p in (tmp_path / "photos").iterdir() if p.name not in (LOCK, OWNER)) == ["holiday.jpg"]


@pytest.mark.slow
def test_another_model_at_the_same_path_is_refused_the_same_model_elsewhere_accepted(
    tmp_path, tiny_checkpoints, capsys
) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints["llava"], ckpt)
    run = tmp_path / "run"
    argv = ["score", "--data", str(SAMPLE), "--out", str(run), "--no-progress"]
    assert main([*argv, "--model", str(ckpt), "--limit", "2"]) == 0
    # The same weights through another path string (a link) continue the run.
    (tmp_path / "link").symlink_to(ckpt)
    assert main([*argv, "--model", str(tmp_path / "link") + "/", "--limit", "3", "--resume"]) == 0
    assert [r["id"] for r in read_jsonl(run / "results.jsonl")] == [r["id"] for r in read_jsonl(SAMPLE / "metadata.jsonl")][:3]
    capsys.readouterr()
    # Other weights at the same path do not, even with every name and size unchanged.
    weights = load_file(str(ckpt / "model.safetensors"))
    norms = sorted(k for k in weights if "norm" in k)
    weights[norms[len(norms) // 2]] += 1
    save_file(weights, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    line = _one_line_error(capsys, [*argv, "--model", str(ckpt), "--limit", "3", "--resume"])
    assert "the run's settings changed (model:" in line


@pytest.mark.slow
def test_a_weights_change_deep_inside_a_large_file_changes_the_fingerprint(tmp_path, tiny_checkpoints, monkeypatch) -> None:
    """Large safetensors files are hashed by header and both ends of every tensor (the
    budget is lowered here so the tiny file takes that path): a small tensor in the middle
    counts, a README does not."""
    from mm_align.pipeline import provenance

    monkeypatch.setattr(provenance, "DIGEST_BUDGET", 4096)
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints["llava"], ckpt)
    before = provenance.weights_fingerprint(ckpt)
    (ckpt / "README.md").write_text("notes")
    assert provenance.weights_fingerprint(ckpt) == before
    weights = load_file(str(ckpt / "model.safetensors"))
    middle = sorted(weights)[len(weights) // 2]
    weights[middle] = weights[middle].clone()
    weights[middle].view(-1)[0] += 1
    save_file(weights, str(ckpt / "model.safetensors"))
    assert (ckpt / "model.safetensors").stat().st_size > 4096
    assert provenance.weights_fingerprint(ckpt) != before


# ---- records refused when read -------------------------------------------------------------------


@pytest.mark.slow
def test_reports_and_compare_refuse_a_run_with_doubled_samples(tmp_path, finished, capsys) -> None:
    from mm_align import compare

    run = tmp_path / "doubled"
    shutil.copytree(finished, run)
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text("".join(lines + lines[:1]))  # what two writers left
    with pytest.raises(RunDirError, match="recorded more than once"):
        load_run(run)
    assert "recorded more than once" in _one_line_error(capsys, ["report", str(run)])
    with pytest.raises(RunDirError, match="recorded more than once"):
        compare([finished, run], tmp_path / "cmp")


# ---- killed at several points, then resumed ------------------------------------------------------


@pytest.mark.slow
def test_runs_killed_at_several_points_resume_to_exactly_the_manifest(tmp_path, load_tiny) -> None:
    """The files a kill -9 leaves at each point of a run (the OS drops the lock itself, the
    owner note stays behind), then a resume: every sample once, numbers as an unbroken run."""
    adapter = load_tiny("llava")
    full = tmp_path / "full"
    score(adapter, SAMPLE, full, limit=4, batch_size=2)
    ids = [r["id"] for r in read_jsonl(full / "results.jsonl")]
    results = (full / "results.jsonl").read_text().splitlines(keepends=True)
    stale_owner = json.dumps({"pid": 999_999, "host": "gone", "started": "2020-01-01T00:00:00Z"})

    def state(name: str, files: dict[str, str]) -> Path:
        run = tmp_path / name
        for rel, text in {LOCK: "", OWNER: stale_owner, **files}.items():
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            (run / rel).write_text(text)
        return run

    config = (full / "config.json").read_text()
    cases = {
        "loading": (state("loading", {}), False),  # killed while the model loaded
        "renaming": (state("renaming", {".config.json.4242.tmp": config[:50]}), False),
        "configured": (state("configured", {"config.json": config}), True),
        "scoring": (state("scoring", {"config.json": config, "results.jsonl": "".join(results[:2]) + results[2][:40]}), True),
        "summarising": (state("summarising", {"config.json": config, "results.jsonl": "".join(results),
                                               "errors.jsonl": ""}), True),
        "sharded": (state("sharded", {"config.json": config,
                                       "shards/rank-000/results.jsonl": "".join(results[0:4:2]),
                                       "shards/rank-001/results.jsonl": results[1] + results[3][:40]}), True),
    }
    want = read_summary(full)["erank"]
    for name, (run, resume) in cases.items():
        score(adapter, SAMPLE, run, limit=4, batch_size=2, resume=resume)
        _each_once(run, ids)
        assert read_summary(run)["erank"] == pytest.approx(want, rel=FLOAT64), name
        assert not (run / "shards").exists() and not (run / OWNER).exists()
    # Nothing already on disk was scored again.
    assert (tmp_path / "summarising" / "results.jsonl").read_text() == "".join(results)


def test_open_dataset_of_special_paths_does_not_hang(tmp_path) -> None:
    """The data set itself may be a FIFO: refused as an unrecognised layout, not read."""
    os.mkfifo(tmp_path / "data.jsonl")
    started = time.monotonic()
    with _deadline(20):
        with pytest.raises(ValueError, match="not a regular file or a folder"):
            open_dataset(tmp_path / "data.jsonl")
        with pytest.raises(OSError, match="is a FIFO"):
            open_dataset(tmp_path / "data.jsonl", fmt="jsonl")
    assert time.monotonic() - started < 20


def test_identity_covers_every_option_that_changes_numbers() -> None:
    from mm_align.config import ScoreConfig

    identity = set(ScoreConfig(model="m", data="d").identity())
    # The model, data and projector enter by content (fingerprints), not by these strings.
    assert {"dtype", "seed", "prompt", "include_special", "max_pixels", "layers", "max_text_tokens",
            "text_overflow", "resize_to_max_pixels", "max_aspect_ratio"} <= identity
    # Settings that change no number of a sample: resuming may change them.
    assert not identity & {"out", "device", "device_map", "batch_size", "limit", "resume", "strict",
                           "n_boot", "progress", "controls", "baseline"}
    from mm_align.config import DEFAULT_MAX_ASPECT_RATIO
    from mm_align.data.images import DEFAULT_MAX_ASPECT_RATIO as data_default

    assert ScoreConfig(model="m", data="d").max_aspect_ratio == DEFAULT_MAX_ASPECT_RATIO == data_default
