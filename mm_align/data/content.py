"""What a pair's content hashes to: the digest of its image and, when the data set gives no
id, the pair's id.

**Content ids.** A sample without an id (no id column, a blank id, or a WebDataset without
``--id-column __key__``) gets ``content_id(image, text)``: the first 16 hex digits (64 bits)
of ``sha256("mm-align pair v1\\n" + len(d) + d + len(t) + t)``, where ``d`` is the 32-byte
sha256 of the image file's bytes (:func:`image_digest`), ``t`` the text in UTF-8 and
``len`` an 8-byte little-endian length. The same photo and caption therefore get the same
id whether a manifest names the file, a parquet row holds its bytes or a WebDataset shard
holds it as a member, and ``compare`` pairs such runs. A pair that occurs twice (same bytes,
same text) gets ``-2``, ``-3``, ... on its repeats, in data set order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from mm_align.data.files import bounded_digest, open_regular
from mm_align.data.samples import ImageRef
from mm_align.data.video import VideoRef

__all__ = ["content_id", "image_digest", "length_prefixed", "media_digest", "utf8"]

_PAIR_SALT = b"mm-align pair v1\n"


def length_prefixed(digest: hashlib._Hash, *parts: bytes) -> None:
    """Feed ``parts`` to ``digest``, each after its 8-byte length, so that ("ab", "c") and
    ("a", "bc") hash apart."""
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)


def utf8(text: str) -> bytes:
    """``text`` in UTF-8 for hashing; a lone surrogate (a bad sample's, reported by
    :func:`~mm_align.data.samples.unicode_checked`) is hashed as it is, never an error."""
    return text.encode("utf-8", "surrogatepass")


def image_digest(ref: ImageRef) -> bytes:
    """sha256 of an image's encoded bytes (a file is read, never decoded: files over 64 MiB by
    size and blocks, :func:`~mm_align.data.files.bounded_digest`); an in-memory PIL image
    hashes its mode, size and pixels. A missing or unreadable file, an in-memory image that
    is closed or fails to decode, or no image, hashes as a marker, so a bad sample still has
    a digest."""
    if ref is None:
        return b"no image"
    if isinstance(ref, Image.Image):
        h = hashlib.sha256(f"{ref.mode} {ref.size}\n".encode())
        try:
            h.update(ref.tobytes())
        except (ValueError, OSError) as err:  # closed, or its pixels fail to decode
            return f"unreadable image: {type(err).__name__}".encode()
        return h.digest()
    if isinstance(ref, bytes):
        return hashlib.sha256(ref).digest()
    try:
        with open_regular(ref) as f:
            return bounded_digest(f)
    except OSError as err:
        return f"unreadable: {type(err).__name__}".encode()


def media_digest(image: ImageRef = None, images: Sequence[ImageRef] = (), video: VideoRef | None = None) -> bytes:
    """The digest of what a sample shows: its image's (:func:`image_digest`, so that image
    samples keep their digests and ids), or sha256 over each of its images' digests, or over
    its clip's (a folder of frames: each frame file's, in name order)."""
    if video is None and not images:
        return image_digest(image)
    refs: list[ImageRef] = list(images)
    kind = b"images"
    if video is not None:
        kind, refs = b"video", [video]
        if isinstance(video, Path) and video.is_dir():
            refs = list(sorted(video.iterdir()))
    h = hashlib.sha256(kind)
    length_prefixed(h, *map(image_digest, refs))
    return h.digest()


def content_id(image: ImageRef, text: str, *, digest: bytes | None = None) -> str:
    """The id of a pair given without one (rule in the module doc); ``digest``: the image's
    digest already computed (several images or a clip: :func:`media_digest`).

    >>> content_id(b"\\xff\\xd8 not really a jpeg", "A cat.")
    '27b7f11d99affd07'
    """
    h = hashlib.sha256(_PAIR_SALT)
    length_prefixed(h, image_digest(image) if digest is None else digest, utf8(text))
    return h.hexdigest()[:16]
