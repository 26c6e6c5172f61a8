"""Samples from manifests, image folders, parquet files, WebDataset shards, Hugging Face data
sets (downloaded or streamed) and the paper's formats.

>>> source = open_dataset("data/sample")          # format detected
>>> for sample in source:                         # streams; nothing decoded yet
...     image, text = sample.load()               # RGB image + text, or BadSampleError

See ``docs/ARCHITECTURE.md`` ("Samples") for the contract and the modules for the rules:
:mod:`~mm_align.data.images` (decoding, modes, limits), :mod:`~mm_align.data.rows`
(columns, ids, texts), :mod:`~mm_align.data.content` (ids and digests from the content),
:mod:`~mm_align.data.shards` (parquet, WebDataset), :mod:`~mm_align.data.stream` (records of a
stream), :mod:`~mm_align.data.paper` (detail_23k, cc_sbu_align).
"""

from mm_align.data.errors import BadSampleError, ManifestError
from mm_align.data.images import DEFAULT_MAX_PIXELS, MIN_SIDE, load_rgb, to_rgb
from mm_align.data.open import FORMATS, detect_format, open_dataset
from mm_align.data.samples import ImageRef, Sample, join_instruction_response
from mm_align.data.source import SampleSource

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "MIN_SIDE",
    "BadSampleError",
    "ImageRef",
    "ManifestError",
    "Sample",
    "SampleSource",
    "detect_format",
    "join_instruction_response",
    "load_rgb",
    "open_dataset",
    "to_rgb",
]
