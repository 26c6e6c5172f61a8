"""The bundled photos written as the layouts people have (a folder with ``captions.csv``, a
parquet file from ``datasets``, WebDataset shards), and the content id computed here from
its documented definition (:mod:`mm_align.data.content`), independently of the code."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
META = [json.loads(line) for line in (SAMPLE / "metadata.jsonl").read_text().splitlines() if line.strip()]
#: (image file, caption) of the bundled photos, in their manifest's order.
PAIRS = [(SAMPLE / m["file_name"], m["text"]) for m in META]


def pair_id(image: bytes, text: str) -> str:
    """64 bits of sha256 over the image bytes' sha256 and the UTF-8 text, each after its
    8-byte little-endian length, salted with "mm-align pair v1\\n"."""
    parts = [hashlib.sha256(image).digest(), text.encode()]
    body = b"".join(len(p).to_bytes(8, "little") + p for p in parts)
    return hashlib.sha256(b"mm-align pair v1\n" + body).hexdigest()[:16]


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar archive holding ``(name, bytes)`` members in this order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_layouts(root: Path, per_shard: int = 5) -> dict[str, Path]:
    """The bundled pairs as ``manifest`` (a folder: images + captions.csv with
    filename,caption), ``parquet`` (``Dataset.to_parquet``, image bytes inside) and
    ``webdataset`` (a folder of shards of ``per_shard`` samples: jpg + txt)."""
    import datasets

    folder = root / "manifest"
    folder.mkdir(parents=True)
    with open(folder / "captions.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "caption"])
        for image, text in PAIRS:
            shutil.copy(image, folder / image.name)
            writer.writerow([image.name, text])
    table = datasets.Dataset.from_dict({
        "image": [{"bytes": image.read_bytes(), "path": image.name} for image, _ in PAIRS],
        "caption": [text for _, text in PAIRS],
    }).cast_column("image", datasets.Image())
    table.to_parquet(str(root / "pairs.parquet"))
    shards = root / "shards"
    shards.mkdir()
    for s in range(0, len(PAIRS), per_shard):
        members = [(f"{i:06d}.{ext}", data) for i, (image, text) in enumerate(PAIRS[s:s + per_shard], start=s)
                   for ext, data in (("jpg", image.read_bytes()), ("txt", text.encode()))]
        write_tar(shards / f"shard-{s // per_shard:05d}.tar", members)
    return {"manifest": folder, "parquet": root / "pairs.parquet", "webdataset": shards}
