"""What produced a run: model identity, software versions, settings, data identity."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import struct
from pathlib import Path
from typing import Any, BinaryIO

import torch
import transformers

from mm_align._version import __version__
from mm_align.data.files import DIGEST_BUDGET, bounded_digest, open_regular

_CHUNK = 1 << 20
_TENSOR_EDGE = 64 << 10


def weights_fingerprint(model_dir: str | Path) -> str | None:
    """sha256 of a local checkpoint's content; None when ``model_dir`` is not a local folder.

    Every file at the top of the folder enters by name and content digest (weights, config,
    processor and tokenizer files; not ``*.md`` and hidden files, which change no number).
    Files up to 64 MiB are hashed whole. Larger ``.safetensors`` files by their header (every
    tensor's name, dtype, shape and offsets) and the first and last 64 KiB of every tensor:
    re-training or re-saving changes those bytes of every tensor it touches, including small
    ones in the middle of a shard (norms, a projector) that a head-and-tail hash of the file
    would miss, for about 40 MB read on a 7B model instead of minutes for every byte. Other
    large files by size and 64 evenly spaced 1 MiB blocks.
    """
    root = Path(model_dir)
    if not str(model_dir) or not root.is_dir():  # a model built in memory has no path ("" is ".")
        return None
    digest = hashlib.sha256()
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix != ".md")
    for path in files:
        digest.update(f"{path.name}\0".encode())
        with open_regular(path) as fh:
            digest.update(_safetensors_digest(fh) if path.suffix == ".safetensors" else bounded_digest(fh))
    return digest.hexdigest()


def _safetensors_digest(fh: BinaryIO) -> bytes:
    """Digest of a safetensors file: whole when small, else header plus both ends of every
    tensor; a header that does not parse falls back to :func:`bounded_digest`."""
    size = os.fstat(fh.fileno()).st_size
    try:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = fh.read(length) if 8 + length <= size else b""
        spans = sorted(tuple(v["data_offsets"]) for k, v in json.loads(header).items() if k != "__metadata__")
    except (struct.error, ValueError, KeyError, TypeError, AttributeError):
        spans = None
    fh.seek(0)
    if spans is None or size <= DIGEST_BUDGET:
        return bounded_digest(fh)
    digest = hashlib.sha256(header)
    for begin, end in spans:
        for start in (begin, max(begin, end - _TENSOR_EDGE)):
            fh.seek(8 + length + start)
            digest.update(fh.read(min(_TENSOR_EDGE, end - start)))
    return digest.digest()


def model_provenance(name_or_path: str, config: Any) -> dict[str, Any]:
    """Identity of a loaded checkpoint: path or hub id, hub revision, weights fingerprint."""
    info: dict[str, Any] = {
        "name_or_path": str(name_or_path),
        "model_type": getattr(config, "model_type", None),
        "revision": getattr(config, "_commit_hash", None),
        "weights_fingerprint": weights_fingerprint(name_or_path),
    }
    note = getattr(config, "mm_align_tiny", None)
    if note:
        info["note"] = str(note)
    return info


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(model: str | Path | Any, **hub_kwargs: Any) -> dict[str, Any]:
    """What a model IS, for resuming: its type, hub revision and weights fingerprint, read
    without loading weights. ``model``: a checkpoint path or hub id, or a loaded adapter;
    ``hub_kwargs`` locate its config (``revision``, ``gguf_file``, ...;
    ``trust_remote_code`` is False unless given).

    The path or id itself enters only when there are no local weights to fingerprint, so the
    same checkpoint reached through another path resumes, and other weights at the same path
    do not."""
    if isinstance(model, str | Path):
        from mm_align.adapters.registry import read_config  # knows the families outside transformers

        hub_kwargs = {"trust_remote_code": False, **hub_kwargs}
        name, config = str(model), read_config(str(model), **hub_kwargs)
    else:
        name, config = model.model.name_or_path, model.model.config
    info = model_provenance(name, config)
    if info["weights_fingerprint"] is not None:
        del info["name_or_path"]
    info.pop("note", None)
    return info


def software_versions() -> dict[str, str]:
    return {
        "mm_align": __version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
