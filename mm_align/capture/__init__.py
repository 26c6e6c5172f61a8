"""Hook capture: a context manager that copies module outputs (or inputs) during a forward pass."""

from mm_align.capture.hooks import (
    Captured,
    Tap,
    capture,
    first_tensor,
    input_of,
    output_of,
)

__all__ = ["Captured", "Tap", "capture", "first_tensor", "input_of", "output_of"]
