"""mm_align.data: formats, bad samples, image modes, malformed manifests, fingerprint.

Every data set here is built at run time in tmp_path from the bundled real photos in
data/sample; bad files are derived from them (truncated, garbled, re-encoded in odd modes).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mm_align.data import (
    FORMATS,
    BadSampleError,
    ManifestError,
    Sample,
    detect_format,
    load_rgb,
    open_dataset,
)
from tests.layouts import pair_id

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"
META = [json.loads(line) for line in (SAMPLE_DIR / "metadata.jsonl").read_text().splitlines()]
PHOTOS = {m["id"]: (SAMPLE_DIR / m["file_name"], m["text"]) for m in META}
FOUR = ["astronaut", "chelsea", "coffee", "camera"]  # three colour photos and a grey one


def reference_rgb(path: Path) -> np.ndarray:
    """An independent decode: PIL straight to RGB (the bundled JPEGs have no EXIF/alpha)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """tmp_path/imgs/<id>.jpg for the FOUR photos."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for sample_id in FOUR:
        shutil.copy(PHOTOS[sample_id][0], folder / f"{sample_id}.jpg")
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def photo_ids(names: list[str]) -> list[str]:
    return [pair_id(PHOTOS[i][0].read_bytes(), PHOTOS[i][1]) for i in names]


def four_rows(folder_name: str = "imgs") -> list[dict]:
    return [{"image": f"{folder_name}/{i}.jpg", "text": PHOTOS[i][1], "id": i} for i in FOUR]


def assert_matches_photos(source, ids=FOUR) -> None:
    samples = list(source)
    assert [s.id for s in samples] == list(ids)
    assert [s.index for s in samples] == list(range(len(ids)))
    for s, sample_id in zip(samples, ids, strict=True):
        assert s.text == PHOTOS[sample_id][1]
        image = s.load_image()
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), reference_rgb(PHOTOS[sample_id][0]))


# ---------------------------------------------------------------- bundled set


def test_bundled_sample_set_is_real_small_and_loads() -> None:
    source = open_dataset(SAMPLE_DIR)
    assert source.fmt == "imagefolder" and 12 <= len(source) <= 16
    assert len({s.id for s in source}) == len(source)
    for sample in source:
        image, text = sample.load()
        assert image.mode == "RGB" and 256 <= max(image.size) <= 320
        assert len(text.split()) >= 8
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 1_000_000
    assert "imagefolder" in source.describe() and str(len(source)) in source.describe()


# ---------------------------------------------------------------- formats


def test_jsonl_manifest_relative_and_absolute_paths(tmp_path: Path, photos: Path) -> None:
    rows = four_rows()
    rows[1]["image"] = str(photos / "chelsea.jpg")  # absolute
    manifest = write_jsonl(tmp_path / "m.jsonl", rows)
    source = open_dataset(manifest)
    assert source.fmt == "jsonl"
    assert_matches_photos(source)
    assert all(s.image_path is not None and s.image_path.is_absolute() for s in source)


def test_jsonl_id_defaults_to_the_content_and_blank_lines_are_skipped(
    tmp_path: Path, photos: Path
) -> None:
    rows = [{k: v for k, v in r.items() if k != "id"} for r in four_rows()]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(json.dumps(r) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]) + "\n"
    )
    assert [s.id for s in open_dataset(manifest)] == photo_ids(FOUR[:3])


def test_csv_manifest_with_quoted_fields(tmp_path: Path, photos: Path) -> None:
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "image", "text"])
        writer.writeheader()
        writer.writerows(four_rows())
        writer.writerow(
            {"id": "multi", "image": "imgs/coffee.jpg", "text": 'a "quoted", comma\nand a newline'}
        )
    source = open_dataset(manifest)
    assert source.fmt == "csv"
    assert_matches_photos([*source][:4])
    assert list(source)[4].text == 'a "quoted", comma\nand a newline'


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_instruction_and_response_are_joined_by_a_newline(
    tmp_path: Path, photos: Path, suffix: str
) -> None:
    rows = [
        {
            "image": "imgs/coffee.jpg",
            "instruction": "  Describe the image.  ",
            "response": "An espresso cup.\n",
        },
        {"image": "imgs/coffee.jpg", "instruction": "", "response": "Only a response."},
    ]
    manifest = tmp_path / f"m.{suffix}"
    if suffix == "jsonl":
        write_jsonl(manifest, rows)
    else:
        with open(manifest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["image", "instruction", "response"])
            writer.writeheader()
            writer.writerows(rows)
    assert [s.text for s in open_dataset(manifest)] == [
        "Describe the image.\nAn espresso cup.",
        "Only a response.",
    ]


def test_image_root_and_column_options(tmp_path: Path, photos: Path) -> None:
    rows = [{"picture": f"{i}.jpg", "caption": PHOTOS[i][1], "id": i} for i in FOUR]
    manifest = write_jsonl(tmp_path / "elsewhere.jsonl", rows)
    source = open_dataset(
        manifest, image_root=photos, image_column="picture", text_column="caption"
    )
    assert_matches_photos(source)


def test_imagefolder_layout_and_split_subfolder(tmp_path: Path) -> None:
    split = tmp_path / "ds" / "validation"
    shutil.copytree(SAMPLE_DIR, split)
    assert detect_format(tmp_path / "ds", split="validation") == "imagefolder"
    source = open_dataset(tmp_path / "ds", split="validation")
    assert source.fmt == "imagefolder"
    assert_matches_photos(source, ids=list(PHOTOS))


def test_imagefolder_with_metadata_csv(tmp_path: Path, photos: Path) -> None:
    with open(photos / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "text"])
        writer.writerows([f"{i}.jpg", PHOTOS[i][1]] for i in FOUR)
    source = open_dataset(photos)
    assert source.fmt == "imagefolder" and [s.id for s in source] == photo_ids(FOUR)
    assert [s.text for s in source] == [PHOTOS[i][1] for i in FOUR]


def test_save_to_disk_with_image_feature_and_column_options(tmp_path: Path, photos: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {
            "img": [str(photos / f"{i}.jpg") for i in FOUR],
            "caption": [PHOTOS[i][1] for i in FOUR],
            "id": FOUR,
        }
    ).cast_column("img", datasets.Image())
    ds.save_to_disk(str(tmp_path / "saved"))
    source = open_dataset(tmp_path / "saved", image_column="img", text_column="caption")
    assert source.fmt == "save_to_disk"
    assert_matches_photos(source)
    assert [s.id for s in open_dataset(tmp_path / "saved")] == FOUR  # img, caption detected
    with pytest.raises(ManifestError, match=r"no 'picture' column.*--image-column"):
        open_dataset(tmp_path / "saved", image_column="picture")


def test_save_to_disk_dataset_dict_with_bytes_and_paths(tmp_path: Path, photos: Path) -> None:
    datasets = pytest.importorskip("datasets")
    as_bytes = datasets.Dataset.from_dict(
        {
            "image": [(photos / f"{i}.jpg").read_bytes() for i in FOUR],
            "text": [PHOTOS[i][1] for i in FOUR],
        }
    )
    as_paths = datasets.Dataset.from_dict(
        {"image": [f"{i}.jpg" for i in FOUR], "text": [PHOTOS[i][1] for i in FOUR]}
    )
    datasets.DatasetDict({"train": as_bytes, "test": as_paths}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ManifestError, match=r"split.*\['test', 'train'\]"):
        open_dataset(tmp_path / "dd")
    train = open_dataset(tmp_path / "dd", split="train")
    for sample, sample_id in zip(train, FOUR, strict=True):
        assert sample.image_path is None
        np.testing.assert_array_equal(
            np.asarray(sample.load_image()), reference_rgb(PHOTOS[sample_id][0])
        )
    test = open_dataset(tmp_path / "dd", split="test", image_root=photos)
    assert [s.image_path for s in test] == [photos / f"{i}.jpg" for i in FOUR]
    assert train.fingerprint() == test.fingerprint()  # same ids, texts and image bytes


def test_detail_23k(tmp_path: Path, photos: Path) -> None:
    entries = [
        {
            "id": f"0000{n}",
            "image": f"{i}.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is shown in this image? "},
                {"from": "gpt", "value": PHOTOS[i][1]},
                {"from": "human", "value": "A second question is ignored."},
                {"from": "gpt", "value": "A second answer."},
            ],
        }
        for n, i in enumerate(FOUR)
    ]
    entries[1]["conversations"][0]["value"] = "Describe it in detail.\n<image>"
    path = tmp_path / "detail_23k.json"
    path.write_text(json.dumps(entries))
    assert detect_format(path) == "detail_23k"
    with pytest.raises(ManifestError, match="image_root"):
        open_dataset(path)
    with pytest.raises(ValueError, match="image_root is not a folder"):
        open_dataset(path, image_root=tmp_path / "train2017")
    source = open_dataset(path, image_root=photos)
    assert [s.id for s in source] == ["00000", "00001", "00002", "00003"]
    assert source[0].text == "What is shown in this image?\n" + PHOTOS["astronaut"][1]
    assert source[1].text == "Describe it in detail.\n" + PHOTOS["chelsea"][1]
    np.testing.assert_array_equal(
        np.asarray(source[3].load_image()), reference_rgb(PHOTOS["camera"][0])
    )


def test_detail_23k_entry_without_gpt_turn_names_the_item(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "a",
                    "image": "a.jpg",
                    "conversations": [
                        {"from": "human", "value": "<image>\nHi"},
                        {"from": "gpt", "value": "Yo"},
                    ],
                },
                {
                    "id": "b",
                    "image": "b.jpg",
                    "conversations": [{"from": "human", "value": "<image>\nHi"}],
                },
            ]
        )
    )
    with pytest.raises(ManifestError, match=r"\(item 1\).*gpt"):
        open_dataset(path, image_root=tmp_path)


def test_cc_sbu_align_folder_and_file(tmp_path: Path, photos: Path) -> None:
    root = tmp_path / "cc_sbu_align"
    shutil.copytree(photos, root / "image")
    annotations = {"annotations": [{"image_id": i, "caption": PHOTOS[i][1]} for i in FOUR]}
    (root / "filter_cap.json").write_text(json.dumps(annotations))
    for path in (root, root / "filter_cap.json"):
        assert detect_format(path) == "cc_sbu_align"
        source = open_dataset(path)
        assert source.fmt == "cc_sbu_align"
        assert_matches_photos(source)


def test_unknown_layout_lists_the_supported_formats(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    for path in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(ManifestError) as err:
            open_dataset(path)
        assert all(name in str(err.value) for name in FORMATS)
    with pytest.raises(ManifestError, match="no such file"):
        open_dataset(tmp_path / "missing.jsonl")
    assert detect_format("someone/captions") == "hub"
    with pytest.raises(ValueError, match="unknown format"):
        open_dataset(tmp_path, fmt="feather")


# ---------------------------------------------------------------- bad samples


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_with_header_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR claims width x height (a decompression-bomb shape)."""
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data[12:29]  # chunk type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


BAD_FILES = {
    "truncated.jpg": (lambda jpg: truncated(jpg), "image file is truncated or corrupt"),
    "garbage.jpg": (lambda jpg: b"this is not an image" * 10, "not a recognised image"),
    "empty.jpg": (lambda jpg: b"", "not a recognised image"),
    # Over our 50 MP default, over PIL's warning threshold (89 MP), over PIL's error (179 MP).
    "big.png": (lambda jpg: png_with_header_size(10_000, 6_000), "image is too large"),
    "warn.png": (lambda jpg: png_with_header_size(12_000, 10_000), "image is too large"),
    "bomb.png": (lambda jpg: png_with_header_size(20_000, 20_000), "image is too large"),
    "line.png": (lambda jpg: _png(Image.new("RGB", (300, 1))), "image is too small"),
}


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def test_each_bad_sample_has_a_specific_reason_and_the_rest_still_load(
    tmp_path: Path, photos: Path
) -> None:
    jpg = (photos / "coffee.jpg").read_bytes()
    rows = [{"id": "good-first", "image": "imgs/astronaut.jpg", "text": "fine"}]
    expected = {}
    for name, (make, reason) in BAD_FILES.items():
        (photos / name).write_bytes(make(jpg))
        rows.append({"id": name, "image": f"imgs/{name}", "text": "fine"})
        expected[name] = reason
    rows += [
        {"id": "missing", "image": "imgs/nope.jpg", "text": "fine"},
        {"id": "no-image", "image": None, "text": "fine"},
        {"id": "folder", "image": "imgs", "text": "fine"},
        {"id": "empty-text", "image": "imgs/chelsea.jpg", "text": ""},
        {"id": "blank-text", "image": "imgs/chelsea.jpg", "text": " \n\t "},
        {"id": "null-text", "image": "imgs/chelsea.jpg", "text": None},
        {"id": "good-last", "image": "imgs/camera.jpg", "text": "fine"},
    ]
    expected |= {
        "missing": "image file not found: ",
        "no-image": "no image given",
        "folder": "image path is not a regular file",
        "empty-text": "text is empty",
        "blank-text": "text is empty",
        "null-text": "text is empty",
    }
    source = open_dataset(write_jsonl(tmp_path / "m.jsonl", rows))
    outcomes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning, no other noise
        for sample in source:
            try:
                sample.load()
                outcomes[sample.id] = "ok"
            except BadSampleError as err:
                outcomes[sample.id] = err.reason
    assert outcomes.pop("good-first") == "ok" and outcomes.pop("good-last") == "ok"
    for sample_id, reason in expected.items():
        assert reason in outcomes[sample_id], (sample_id, outcomes[sample_id])
    assert str(photos / "nope.jpg") in outcomes["missing"]


def test_max_pixels_is_configurable(tmp_path: Path, photos: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", four_rows())
    first, second, *_ = open_dataset(manifest, max_pixels=320 * 320 - 1)
    with pytest.raises(
        BadSampleError, match="320 x 320 = 102400 pixels, more than the limit of 102399"
    ):
        first.load_image()
    assert second.load_image().size == (320, 213)


# ---------------------------------------------------------------- image modes


def decode(img: Image.Image, fmt: str = "PNG", **save_args) -> np.ndarray:
    """Encode ``img`` to bytes in ``fmt`` and decode it with load_rgb."""
    buffer = io.BytesIO()
    img.save(buffer, fmt, **save_args)
    out = load_rgb(buffer.getvalue())
    assert out.mode == "RGB"
    return np.asarray(out)


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 32768, 65535]] * 2, dtype=np.uint16)
    img = Image.fromarray(values)  # mode I;16
    assert img.mode == "I;16"
    for out in (decode(img, "PNG"), decode(img, "TIFF")):
        np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
        assert (out[..., 0] == out[..., 2]).all()


def test_32_bit_int_and_float_images() -> None:
    in_range = Image.fromarray(np.array([[0, 65535], [32768, 257]], dtype=np.int32), "I")
    np.testing.assert_array_equal(decode(in_range, "TIFF")[..., 0], [[0, 255], [128, 1]])
    wide = Image.fromarray(np.array([[-1000, 0], [1000, 3000]], dtype=np.int32), "I")
    np.testing.assert_array_equal(decode(wide, "TIFF")[..., 0], [[0, 64], [128, 255]])
    unit = Image.fromarray(np.array([[0.0, 0.5], [1.0, np.nan]], dtype=np.float32), "F")
    np.testing.assert_array_equal(decode(unit, "TIFF")[..., 0], [[0, 128], [255, 0]])
    big = Image.fromarray(np.array([[10.0, 20.0], [30.0, 110.0]], dtype=np.float32), "F")
    np.testing.assert_array_equal(decode(big, "TIFF")[..., 0], [[0, 26], [51, 255]])


def test_alpha_is_composited_over_white() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # transparent black -> white
    rgba[0, 2] = (0, 0, 255, 128)  # half blue over white
    out = decode(Image.fromarray(rgba, "RGBA"))
    np.testing.assert_array_equal(out[0, :3], [[255, 0, 0], [255, 255, 255], [127, 127, 255]])
    la = Image.fromarray(
        np.array([[[0, 0], [0, 255]], [[100, 128], [50, 255]]], dtype=np.uint8), "LA"
    )
    over_white = round((100 * 128 + 255 * (255 - 128)) / 255)  # 177
    np.testing.assert_array_equal(decode(la)[..., 0], [[255, 0], [over_white, 50]])


def test_palette_images_with_and_without_transparency() -> None:
    photo = Image.open(PHOTOS["chelsea"][0]).convert("RGB")
    palette = photo.quantize(colors=16)
    np.testing.assert_array_equal(decode(palette), np.asarray(palette.convert("RGB")))
    transparent = palette.copy()
    transparent.info["transparency"] = int(np.asarray(palette)[0, 0])
    out = decode(transparent)
    assert (out[0, 0] == 255).all()
    keep = np.asarray(palette) != np.asarray(palette)[0, 0]
    np.testing.assert_array_equal(out[keep], np.asarray(palette.convert("RGB"))[keep])
    pa = palette.convert("PA")
    np.testing.assert_array_equal(np.asarray(load_rgb(pa)), np.asarray(palette.convert("RGB")))


def test_cmyk_one_bit_and_grey_match_pil_conversion() -> None:
    photo = Image.open(PHOTOS["coffee"][0]).convert("RGB")
    cmyk = photo.convert("CMYK")
    np.testing.assert_array_equal(decode(cmyk, "TIFF"), np.asarray(cmyk.convert("RGB")))
    cmyk_jpeg = io.BytesIO()
    cmyk.save(cmyk_jpeg, "JPEG", quality=95)
    out = np.asarray(load_rgb(cmyk_jpeg.getvalue())).astype(int)
    assert np.abs(out - np.asarray(photo).astype(int)).mean() < 6  # lossy, but not inverted
    bilevel = photo.convert("1")
    np.testing.assert_array_equal(decode(bilevel), np.asarray(bilevel.convert("RGB")))
    assert set(np.unique(decode(bilevel))) <= {0, 255}
    grey = photo.convert("L")
    np.testing.assert_array_equal(decode(grey)[..., 1], np.asarray(grey))


def test_exif_orientation_is_applied() -> None:
    photo = Image.open(PHOTOS["coffee"][0]).convert("RGB")  # 320 x 213
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=95, exif=exif)
    out = load_rgb(buffer.getvalue())
    assert out.size == (213, 320)
    expected = np.asarray(photo.transpose(Image.Transpose.ROTATE_270)).astype(int)
    assert np.abs(np.asarray(out).astype(int) - expected).mean() < 3


# ---------------------------------------------------------------- malformed manifests


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('{"image": "a.jpg", "text": "x"}\n{"image": "b.jpg", "text": "y"\n', 2, "invalid JSON"),
        ('{"image": "a.jpg", "text": "x"}\n\n{"text": "y"}\n', 3, "no 'image' column"),
        ('{"image": "a.jpg"}\n', 1, "no 'text' column, nor 'instruction' \\+ 'response'"),
        ('{"image": "a.jpg", "instruction": "x"}\n', 1, "no 'text' column"),
        ('["a.jpg", "x"]\n', 1, "expected an object"),
        ('{"image": "a.jpg", "text": 3}\n', 1, "'text' must be a string"),
        ('{"image": 3, "text": "x"}\n', 1, "'image' must be a file path"),
        (
            '{"image": "a.jpg", "text": "x", "id": "a"}\n'
            '{"image": "b.jpg", "text": "y", "id": "a"}\n',
            2,
            "duplicate id 'a' \\(first at line 1\\)",
        ),
        ('{"image": "a.jpg", "text": "x", "id": [1]}\n', 1, "'id' must be a string or an integer"),
    ],
)
def test_malformed_jsonl_fails_fast_with_the_line(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message) as err:
        open_dataset(path)
    assert err.value.line == line and str(err.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("image,words\na.jpg,x\n", 1, "no 'text' column.*--text-column"),
        ("image,caption,txt\na.jpg,x,y\n", 1, "2 candidate text columns: caption, txt; .*--text-column"),
        ("image,path,text\na.jpg,x,y\n", 1, "2 candidate image columns: image, path; .*--image-column"),
        ("image,text\na.jpg,x\nb.jpg\n", 3, "fewer fields than the header"),
        ("image,text\na.jpg,x,extra\n", 2, "more fields than the header"),
        ("", 1, "empty CSV file"),
    ],
)
def test_malformed_csv_fails_fast_with_the_line(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message) as err:
        open_dataset(path)
    assert err.value.line == line


# ---------------------------------------------------------------- fingerprint and streaming


def test_fingerprint_tracks_content_only(tmp_path: Path, photos: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", four_rows())
    base = open_dataset(manifest).fingerprint()
    assert len(base) == 64 and base == open_dataset(manifest).fingerprint()

    # Same content as an imagefolder: same fingerprint.
    folder_rows = [{"file_name": f"{i}.jpg", "text": PHOTOS[i][1], "id": i} for i in FOUR]
    write_jsonl(photos / "metadata.jsonl", folder_rows)
    assert open_dataset(photos).fingerprint() == base

    rows = four_rows()
    rows[2]["text"] += "!"
    assert open_dataset(write_jsonl(tmp_path / "c.jsonl", rows)).fingerprint() != base

    image = photos / "coffee.jpg"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 1
    image.write_bytes(bytes(data))
    assert open_dataset(manifest).fingerprint() != base


def test_iteration_streams_and_does_not_open_images(
    tmp_path: Path, photos: Path, monkeypatch
) -> None:
    source = open_dataset(write_jsonl(tmp_path / "m.jsonl", four_rows()))
    (photos / "chelsea.jpg").unlink()  # after opening: only load_image may notice
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    samples = list(source)
    assert len(samples) == 4 and opened == []
    assert all(isinstance(s, Sample) for s in samples)
    with pytest.raises(BadSampleError, match="image file not found"):
        samples[1].load_image()
    assert samples[2].load_image().size == (320, 213)
    assert len(opened) == 1  # the missing file is noticed before PIL is asked


def test_blank_ids_fall_back_to_the_content_and_non_utf8_manifests_name_the_line(tmp_path):
    from mm_align.data import ManifestError, open_dataset

    photo = Path(__file__).resolve().parents[1] / "data" / "sample" / "coffee.jpg"
    manifest = tmp_path / "ids.csv"
    manifest.write_text(f"id,image,text\n,{photo},A cup.\n ,{photo},Another cup.\nx,{photo},Third.\n"
                        f",{photo},A cup.\n")
    cup, another = (pair_id(photo.read_bytes(), text) for text in ("A cup.", "Another cup."))
    # The same pair twice: its repeat is numbered, in data set order.
    assert [s.id for s in open_dataset(manifest)] == [cup, another, "x", f"{cup}-2"]
    for suffix, body in ((".jsonl", b'{"image": "a.jpg", "text": "ok"}\n{"image": "b.jpg", "text": "caf\xe9"}\n'),
                         (".csv", b"image,text\na.jpg,ok\nb.jpg,caf\xe9\n")):
        bad = tmp_path / f"latin1{suffix}"
        bad.write_bytes(body)
        with pytest.raises(ManifestError, match=r"latin1\.\w+:\d+: not UTF-8"):
            open_dataset(bad)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"image": "a.jpg", "text": "ok"}\n')
    assert [s.text for s in open_dataset(bom)] == ["ok"]


def test_a_named_text_column_must_exist(tmp_path):
    from mm_align.data import ManifestError, open_dataset

    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"image": "a.jpg", "instruction": "q", "response": "r"}\n')
    assert [s.text for s in open_dataset(manifest)] == ["q\nr"]
    with pytest.raises(ManifestError, match="no 'caption' column"):
        open_dataset(manifest, text_column="caption")
