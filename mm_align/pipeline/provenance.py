"""What produced a run: model identity, software versions, settings, data identity."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import torch
import transformers

import mm_align

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_EDGE_BYTES = 1 << 20


def weights_fingerprint(model_dir: str | Path) -> str | None:
    """sha256 over the name, size, first and last MiB of every weight file of a local
    checkpoint; None when ``model_dir`` is not a local folder.

    Hashing every byte of a 15 GB checkpoint would cost minutes per run; sizes plus both
    ends of each file catch re-saved, re-trained or truncated weights in milliseconds.
    """
    root = Path(model_dir)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in root.iterdir() if p.suffix in _WEIGHT_SUFFIXES):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as fh:
            digest.update(fh.read(_EDGE_BYTES))
            if size > 2 * _EDGE_BYTES:
                fh.seek(-_EDGE_BYTES, 2)
                digest.update(fh.read(_EDGE_BYTES))
    return digest.hexdigest()


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
        while chunk := fh.read(_EDGE_BYTES):
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
        from transformers import AutoConfig

        hub_kwargs = {"trust_remote_code": False, **hub_kwargs}
        name, config = str(model), AutoConfig.from_pretrained(str(model), **hub_kwargs)
    else:
        name, config = model.model.name_or_path, model.model.config
    info = model_provenance(name, config)
    if info["weights_fingerprint"] is not None:
        del info["name_or_path"]
    info.pop("note", None)
    return info


def software_versions() -> dict[str, str]:
    return {
        "mm_align": mm_align.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
