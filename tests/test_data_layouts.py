"""The layouts image-caption sets come in (a folder with a manifest of any name, parquet,
WebDataset shards): detected, read as streams, with ids and fingerprints from the content,
so the same pairs in any layout pair up; bad records are that sample's error."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mm_align.data import BadSampleError, ManifestError, detect_format, open_dataset
from mm_align.pipeline.selection import select
from tests.layouts import PAIRS, pair_id, write_layouts, write_tar

IDS = [pair_id(image.read_bytes(), text) for image, text in PAIRS]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    return write_layouts(tmp_path_factory.mktemp("layouts"))


def test_the_same_pairs_in_three_layouts_have_the_same_ids_and_fingerprint(layouts) -> None:
    sources = {name: open_dataset(path) for name, path in layouts.items()}
    assert {name: s.fmt for name, s in sources.items()} == {
        "manifest": "csv", "parquet": "parquet", "webdataset": "webdataset"}
    for source in sources.values():
        assert [s.id for s in source] == IDS
        assert [s.text for s in source] == [text for _, text in PAIRS]
    assert len({s.fingerprint() for s in sources.values()}) == 1
    image, text = next(iter(sources["webdataset"])).load()
    assert image.size == Image.open(PAIRS[0][0]).size and text == PAIRS[0][1]


def test_shards_by_file_folder_glob_and_brace_list(layouts) -> None:
    shards = layouts["webdataset"]
    whole = [s.id for s in open_dataset(shards)]
    assert [s.id for s in open_dataset(f"{shards}/*.tar")] == whole
    assert [s.id for s in open_dataset(f"{shards}/shard-{{00000..00002}}.tar")] == whole
    assert [s.id for s in open_dataset(f"{shards}/shard-{{00002,00000}}.tar")] == whole[10:] + whole[:5]
    assert [s.id for s in open_dataset(shards / "shard-00001.tar")] == whole[5:10]
    assert detect_format(f"{shards}/shard-{{00000..00001}}.tar") == "webdataset"
    with pytest.raises(ManifestError, match=r"1 listed shard.* do not exist.*shard-00003.tar"):
        open_dataset(f"{shards}/shard-{{00000..00003}}.tar")


def test_id_column_keeps_webdataset_keys_and_every_sample_names_its_origin(layouts) -> None:
    source = open_dataset(layouts["webdataset"], id_column="__key__")
    samples = list(source)
    assert [s.id for s in samples] == [f"{i:06d}" for i in range(len(PAIRS))]
    assert samples[7].origin == "shard-00001.tar key 000007"
    rows = list(open_dataset(layouts["parquet"]))
    assert rows[3].origin == "pairs.parquet row 3"
    with pytest.raises(ManifestError, match=r"no 'key' column.*--id-column"):
        open_dataset(layouts["parquet"], id_column="key").fingerprint()


def test_a_folder_needs_exactly_one_manifest(tmp_path, layouts) -> None:
    folder = layouts["manifest"]
    assert next(iter(open_dataset(folder))).image_path == (folder / PAIRS[0][0].name).absolute()
    (tmp_path / "a.csv").write_text("image,text\n")
    (tmp_path / "b.jsonl").write_text("")
    with pytest.raises(ManifestError, match=r"expected one .csv or .jsonl manifest.*a.csv, b.jsonl"):
        open_dataset(tmp_path)


def test_streams_are_read_again_never_held_or_decoded(layouts, monkeypatch) -> None:
    source = open_dataset(layouts["webdataset"])
    assert source.is_stream and len(source) == len(PAIRS)
    with pytest.raises(TypeError, match="stream"):
        source[0]
    opened = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or None)
    assert [s.id for s in source] == IDS and [s.id for s in source] == IDS  # two passes
    assert opened == []  # ids and fingerprints hash bytes: no image was decoded


def test_sample_draws_the_same_pairs_from_every_layout(layouts) -> None:
    drawn = {name: [s.id for s in select(open_dataset(p), sample=5, seed=7)] for name, p in layouts.items()}
    assert len(drawn["manifest"]) == 5 and drawn["manifest"] == drawn["parquet"] == drawn["webdataset"]
    assert drawn["manifest"] == [IDS[i] for i in sorted(__import__("numpy").random.default_rng(7).choice(15, 5, replace=False))]


def test_bad_webdataset_members_are_their_samples_errors(tmp_path) -> None:
    photo, caption = PAIRS[0]
    good = photo.read_bytes()
    shard = write_tar(tmp_path / "bad.tar", [
        ("a.jpg", good), ("a.txt", caption.encode()),
        ("b.jpg", b"not a jpeg"), ("b.txt", b"A broken image."),
        ("c.jpg", good), ("c.txt", b"caf\xe9"),
        ("d.jpg", good),  # no caption
    ])
    # Captions in a json member (img2dataset writes them there).
    json_shard = write_tar(tmp_path / "json.tar", [
        ("e.jpg", good), ("e.json", b'{"caption": "From the json member."}'),
        ("f.jpg", good), ("f.json", b"{not json"),
    ])
    samples = {s.origin.split(" key ")[1]: s for source in (shard, json_shard) for s in open_dataset(source)}
    assert samples["a"].load()[1] == caption
    with pytest.raises(BadSampleError, match="not a recognised image"):
        samples["b"].load()
    with pytest.raises(BadSampleError, match="'txt' is not UTF-8"):
        samples["c"].load()
    with pytest.raises(BadSampleError, match="text is empty"):
        samples["d"].load()
    assert samples["e"].load()[1] == "From the json member."
    with pytest.raises(BadSampleError, match="'json' member is not valid JSON"):
        samples["f"].load()
    assert len({s.id for s in samples.values()}) == 6


def test_an_unreadable_archive_names_its_shard_before_scoring(tmp_path, layouts) -> None:
    data = (layouts["webdataset"] / "shard-00001.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(ManifestError, match=r"cut.tar: unreadable tar archive after key '00000\d'"):
        open_dataset(tmp_path / "cut.tar").fingerprint()


def test_bad_parquet_rows_are_their_samples_errors(tmp_path) -> None:
    photo, caption = PAIRS[1]
    table = pa.table({"jpg": [photo.read_bytes(), photo.read_bytes(), b"\x00junk"],
                      "caption": [caption, None, "Junk bytes."], "n": [1, 2, 3]})
    pq.write_table(table, tmp_path / "rows.parquet")
    samples = list(open_dataset(tmp_path / "rows.parquet"))
    assert samples[0].load()[1] == caption and samples[0].id == pair_id(photo.read_bytes(), caption)
    with pytest.raises(BadSampleError, match="text is empty"):
        samples[1].load()
    with pytest.raises(BadSampleError, match="not a recognised image"):
        samples[2].load()
    pq.write_table(pa.table({"image": [7], "text": ["x"]}), tmp_path / "typed.parquet")
    (typed,) = open_dataset(tmp_path / "typed.parquet")
    assert typed.origin == "typed.parquet row 0"
    with pytest.raises(BadSampleError, match="'image' must be a file path, image bytes or an image"):
        typed.load()


def test_columns_are_detected_in_every_format_and_two_candidates_are_refused(tmp_path) -> None:
    photo, caption = PAIRS[2]
    (tmp_path / "m.jsonl").write_text(json.dumps({"filename": str(photo), "caption": caption}) + "\n")
    assert next(iter(open_dataset(tmp_path / "m.jsonl"))).text == caption
    pq.write_table(pa.table({"img": [photo.read_bytes()], "sentence": [caption]}), tmp_path / "p.parquet")
    assert next(iter(open_dataset(tmp_path / "p.parquet"))).text == caption
    pq.write_table(pa.table({"img": [b""], "png": [b""], "text": ["x"]}), tmp_path / "two.parquet")
    with pytest.raises(ManifestError, match=r"2 candidate image columns: img, png; .*--image-column"):
        open_dataset(tmp_path / "two.parquet").fingerprint()
    assert next(iter(open_dataset(tmp_path / "two.parquet", image_column="png"))).text == "x"
    buffer = io.BytesIO()
    Image.open(photo).save(buffer, "PNG")
    shard = write_tar(tmp_path / "s.tar", [("k.png", buffer.getvalue()), ("k.caption", b"A png.")])
    assert next(iter(open_dataset(shard))).load()[0].size == Image.open(photo).size


def test_a_response_alone_is_the_text(tmp_path) -> None:
    photo, caption = PAIRS[3]
    (tmp_path / "r.jsonl").write_text(json.dumps({"image": str(photo), "response": caption}) + "\n")
    assert next(iter(open_dataset(tmp_path / "r.jsonl"))).text == caption


def test_a_streamed_datasets_source_gives_the_same_ids(tmp_path, layouts) -> None:
    """``streaming=True`` goes through datasets' IterableDataset (here a local folder that
    load_dataset reads with its parquet builder, as it would a hub repository)."""
    from mm_align.data.hf import open_hub
    from mm_align.data.rows import Columns

    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "train.parquet").write_bytes(layouts["parquet"].read_bytes())
    source = open_hub(str(folder), split="train", columns=Columns(), image_root=None,
                      max_pixels=10**8, streaming=True)
    assert source.is_stream and [s.id for s in source] == IDS
    assert next(iter(source)).load()[1] == PAIRS[0][1]
