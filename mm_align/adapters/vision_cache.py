"""Run the vision tower once per image for many projectors: cache what the connector takes,
replay it through each projector.

Every transformers VLM turns pixels into image-token rows in ``get_image_features``: the
vision tower, then the connector (projector). :func:`reusing_vision` shadows that method on
the model instance. On a call it has not seen, it runs the real method, records the
connector's input and stores it (:class:`FeatureStore`); on a call it has seen, it skips the
vision tower and returns ``connector(cached input)`` in the layout the real method returned.
The connector is called as a module, so the adapter's hooks see it as in a real pass.

Keys. A call is identified by the content of its tensors (the processed pixels, grids and
sizes: so the image content and every processor setting) and its other arguments, under the
**vision identity** of the model (:func:`vision_identity`: a hash of every weight outside the
connector and the LLM, the config and the device type). Swapping the projector keeps the
identity; a different vision tower, dtype or device gets other keys. Calls are cached whole:
a sweep scores the same batches for every member, so they repeat exactly.

Which models replay exactly is not assumed: the first batch under a new vision identity is
scored for real and replayed, every stage and layer compared, and the verdict is stored with
the features. A family whose connector takes more than one tensor, is called several times
per batch, or whose model reads other outputs of the vision tower (Qwen3-VL's deepstack
features) fails that check and is scored without reuse. Replay hands the connector its input
with the real call's strides, so that a low-precision matmul rounds as it did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mm_align.adapters.features import feature_rows, features_owner, shadowing
from mm_align.stages import LLM_STAGES

__all__ = ["FeatureStore", "ReuseStats", "reusing_vision", "vision_identity"]

_VERDICT = "replay.json"

log = logging.getLogger(__name__)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a tensor of any dtype (bfloat16 too), on the CPU."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def vision_identity(adapter: Any) -> str:
    """sha256 of what decides the connector's input: the model class and config, the device
    type, and every parameter and buffer outside the connector, the LLM and the LM head."""
    model = adapter.model
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    skip = {id(t) for m in (adapter.projector, adapter.language_model, head) if m is not None
            for t in (*m.parameters(), *m.buffers())}
    digest = hashlib.sha256(f"{type(model).__name__}|{model.config.to_json_string()}|"
                            f"{adapter.device.type}".encode())
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if id(t) not in skip:
            digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
            digest.update(_tensor_bytes(t))
    return digest.hexdigest()


def _call_key(identity: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """sha256 of a call's arguments: tensors by dtype, shape and content, others by repr."""
    digest = hashlib.sha256(identity.encode())
    for name, value in [*enumerate(args), *sorted(kwargs.items())]:
        digest.update(f"|{name}=".encode())
        if isinstance(value, torch.Tensor):
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(_tensor_bytes(value))
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


class FeatureStore:
    """Cached connector inputs by vision identity and call key: safetensors files under
    ``root/<identity[:16]>/`` (shared by any run of the same vision tower), or in memory when
    ``root`` is None. Each file holds one call's connector input and, in its metadata, the
    layout of the rows ``get_image_features`` returned."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = None if root is None else Path(root)
        self._memory: dict[tuple[str, str], tuple[torch.Tensor, dict[str, Any]]] = {}
        self._verdicts: dict[str, dict[str, Any]] = {}

    def _dir(self, identity: str) -> Path:
        return self.root / identity[:16]  # type: ignore[operator]  # only with a root

    def get(self, identity: str, key: str) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """The cached connector input ``(rows..., width)`` on the CPU and its layout, or None."""
        if self.root is None:
            return self._memory.get((identity, key))
        path = self._dir(identity) / f"{key}.safetensors"
        if not path.is_file():
            return None
        from safetensors import SafetensorError, safe_open

        try:  # one open for the layout and the tensor
            with safe_open(str(path), framework="pt") as fh:
                return fh.get_tensor("input"), json.loads((fh.metadata() or {})["layout"])
        except (SafetensorError, OSError, KeyError, ValueError) as err:  # damaged: compute anew
            log.warning("ignoring the damaged feature file %s (%s)", path, err)
            return None

    def put(self, identity: str, key: str, inputs: torch.Tensor, layout: dict[str, Any]) -> None:
        """Store one call (written atomically: a reader never sees half a file)."""
        # one copy, contiguous (safetensors needs it; the real strides are in the layout)
        cpu = torch.empty(inputs.shape, dtype=inputs.dtype).copy_(inputs.detach())
        if self.root is None:
            self._memory[(identity, key)] = (cpu, layout)
            return
        folder = self._dir(identity)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        save_file({"input": cpu}, str(tmp), metadata={"layout": json.dumps(layout)})
        os.replace(tmp, folder / f"{key}.safetensors")

    def drop(self, identity: str) -> None:
        """Forget every call cached under ``identity`` (and its verdict)."""
        if self.root is None:
            self._memory = {k: v for k, v in self._memory.items() if k[0] != identity}
            self._verdicts.pop(identity, None)
        else:
            shutil.rmtree(self._dir(identity), ignore_errors=True)

    def verdict(self, identity: str) -> dict[str, Any] | None:
        """Whether replay was found exact for this vision identity (``{"problem": None}``)
        or why not, if it was checked."""
        if self.root is None:
            return self._verdicts.get(identity)
        path = self._dir(identity) / _VERDICT
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def set_verdict(self, identity: str, verdict: dict[str, Any]) -> None:
        if self.root is None:
            self._verdicts[identity] = verdict
            return
        self._dir(identity).mkdir(parents=True, exist_ok=True)
        tmp = self._dir(identity) / f".{_VERDICT}.{os.getpid()}.tmp"  # sweeps may share the folder
        tmp.write_text(json.dumps(verdict, indent=2), encoding="utf-8")
        os.replace(tmp, self._dir(identity) / _VERDICT)


@dataclass
class ReuseStats:
    """What one :func:`reusing_vision` block did: ``get_image_features`` calls run for real
    (``computed``) and replayed from the store (``reused``; the check's replay not counted);
    ``checked``: whether this block ran the replay check; ``problem``: why replay is off."""

    identity: str
    computed: int = 0
    reused: int = 0
    checked: bool = False
    problem: str | None = None
    bypass: bool = field(default=False, repr=False)  # run for real, whatever the store holds

    def as_dict(self) -> dict[str, Any]:
        """The counts and verdict, JSON-ready."""
        return {"identity": self.identity, "computed": self.computed, "reused": self.reused,
                "checked": self.checked, "problem": self.problem}


def _layout(returned: Any, output: torch.Tensor) -> dict[str, Any] | str:
    """How ``get_image_features``' return value lays out the connector's output rows, or
    why it does not (then the call cannot be replayed)."""
    value = getattr(returned, "pooler_output", returned)
    parts = list(value) if isinstance(value, list | tuple) else [value]
    if not all(isinstance(p, torch.Tensor) for p in parts):
        return "get_image_features returned something other than tensors"
    order = _row_order(feature_rows(returned), output.detach().reshape(-1, output.shape[-1]))
    if order is None:
        return "get_image_features changes the connector's rows (more than a reshape or reorder)"
    return {"shapes": [list(p.shape) for p in parts],
            "container": type(value).__name__ if isinstance(value, list | tuple) else "tensor",
            "wrapped": hasattr(returned, "pooler_output"), "order": order}


def _row_order(returned: torch.Tensor, output: torch.Tensor) -> list[int] | None:
    """``order`` with ``output[order] == returned`` row for row (``[]``: no reordering), or
    None when the returned rows are not the connector's. Qwen2.5-VL's vision tower undoes
    its window ordering after the merger, so its rows come back permuted."""
    if returned.shape != output.shape:
        return None
    if torch.equal(returned, output):
        return []
    where = {_tensor_bytes(row): index for index, row in enumerate(output)}
    order = [where.get(_tensor_bytes(row), -1) for row in returned]
    return None if -1 in order else order


def _rebuild(layout: dict[str, Any], output: torch.Tensor) -> Any:
    """``get_image_features``' return value, in ``layout``, from the connector's output."""
    rows = output.reshape(-1, output.shape[-1])
    if layout["order"]:
        rows = rows[torch.tensor(layout["order"], device=rows.device)]
    sizes = [int(torch.Size(shape).numel()) // rows.shape[1] for shape in layout["shapes"]]
    parts = [part.reshape(shape) for part, shape in zip(rows.split(sizes), layout["shapes"])]
    value: Any = parts[0] if layout["container"] == "tensor" else (
        tuple(parts) if layout["container"] == "tuple" else parts)
    return BaseModelOutputWithPooling(pooler_output=value) if layout["wrapped"] else value


@contextmanager
def _connector_calls(connector: torch.nn.Module) -> Iterator[list[tuple[tuple, dict, Any]]]:
    """Every call of the connector module in the block: ``(args, kwargs, output)``."""
    calls: list[tuple[tuple, dict, Any]] = []
    handle = connector.register_forward_hook(
        lambda _module, args, kwargs, output: calls.append((args, kwargs, output)), with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def _record(calls: list[tuple[tuple, dict, Any]], returned: Any) -> tuple[torch.Tensor, dict] | str:
    """The connector input and layout of one real call, or why it cannot be replayed."""
    if len(calls) != 1:
        return f"the connector ran {len(calls)} times in one get_image_features call"
    args, kwargs, output = calls[0]
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
        return "the connector takes more than one tensor"
    layout = _layout(returned, output)
    if isinstance(layout, str):
        return layout
    inputs = args[0]
    # The input's memory layout, to replay it exactly: a low-precision matmul can round
    # differently on a strided view (LLaVA's [:, 1:] cut) than on a contiguous copy.
    layout["input"] = {"stride": list(inputs.stride()), "offset": inputs.storage_offset()}
    return inputs, layout


def _as_recorded(inputs: torch.Tensor, layout: dict[str, Any], device: torch.device) -> torch.Tensor:
    """The cached connector input on ``device`` with the strides and storage offset the real
    call's input had."""
    stride, offset = layout["input"]["stride"], layout["input"]["offset"]
    span = offset + 1 + sum((size - 1) * step for size, step in zip(inputs.shape, stride))
    buffer = torch.empty(span, dtype=inputs.dtype, device=device)
    try:
        return buffer.as_strided(inputs.shape, stride, offset).copy_(inputs)
    except RuntimeError:  # an expanded input (stride 0) cannot be written to: use its values
        return inputs.to(device)


def _replaying(adapter: Any, store: FeatureStore, stats: ReuseStats, original: Any) -> Any:
    """The stand-in for ``get_image_features`` (see :func:`reusing_vision`)."""

    def replaying(*args: Any, **kwargs: Any) -> Any:
        if stats.problem:
            return original(*args, **kwargs)
        key = _call_key(stats.identity, args, kwargs)
        hit = None if stats.bypass else store.get(stats.identity, key)
        if hit is not None:
            stats.reused += 1
            inputs, layout = hit
            device = next(adapter.projector.parameters()).device
            return _rebuild(layout, adapter.projector(_as_recorded(inputs, layout, device)))
        with _connector_calls(adapter.projector) as calls:
            returned = original(*args, **kwargs)
        stats.computed += 1
        recorded = _record(calls, returned)
        if isinstance(recorded, str):
            stats.problem = recorded
        else:
            store.put(stats.identity, key, *recorded)
        return returned

    return replaying


def _checking(adapter: Any, store: FeatureStore, stats: ReuseStats) -> Any:
    """The stand-in for ``represent_batch`` until the first batch is checked: that batch is
    scored for real (its result is returned), then again from the store; the verdict is
    stored for the vision identity."""
    original = adapter.represent_batch

    def checking(images: Sequence[Any], texts: Sequence[str], layers: Sequence[int] | None = None) -> Any:
        if stats.checked or stats.problem:
            return original(images, texts, layers=layers)
        stats.bypass = True
        try:
            real = original(images, texts, layers=layers)
        finally:
            stats.bypass = False
        if not stats.problem:
            reused = stats.reused
            try:
                stats.problem = _mismatch(real, original(images, texts, layers=layers))
            except (RuntimeError, ValueError, TypeError, AttributeError, KeyError) as err:
                stats.problem = f"replay failed ({type(err).__name__}: {err})"
            if not stats.problem and stats.reused == reused:
                stats.problem = "no get_image_features call was replayed"
            stats.reused = reused
        stats.checked = True
        store.set_verdict(stats.identity, {"problem": stats.problem,
                                           "model_type": adapter.model.config.model_type})
        return real

    return checking


@contextmanager
def reusing_vision(adapter: Any, store: FeatureStore, identity: str | None = None) -> Iterator[ReuseStats]:
    """Inside the block, ``adapter``'s model replays cached connector inputs instead of
    running its vision tower, where that gives the real numbers (see the module doc).

    Whether it does is checked once per vision identity: the first batch the adapter scores
    in the block, if the store holds no verdict yet, is scored for real and then replayed,
    every stage and layer compared (the cost of one more LLM pass over one batch). A
    verdict of "no" (or a call that cannot be recorded) turns replay off: the model then runs
    as usual, with the same numbers. Yields live counts (:class:`ReuseStats`).
    """
    stats = ReuseStats(identity or vision_identity(adapter))
    verdict = store.verdict(stats.identity)
    stats.problem = verdict.get("problem") if verdict else None
    try:
        owner = features_owner(adapter.model)
    except AttributeError as err:  # MiniGPT-v2: its own forward, no get_image_features
        stats.problem = str(err)
        yield stats
        return
    replaying = _replaying(adapter, store, stats, owner.get_image_features)
    with shadowing(owner, "get_image_features", replaying):
        if verdict is None:
            with shadowing(adapter, "represent_batch", _checking(adapter, store, stats)):
                yield stats
        else:
            yield stats


def _mismatch(real: Sequence[Any], replayed: Sequence[Any]) -> str | None:
    """The first stage or layer where two lists of representations differ, in words."""
    for index, (a, b) in enumerate(zip(real, replayed)):
        pairs = [(stage, a[stage], b[stage]) for stage in a]
        pairs += [(f"{stage} layer {layer}", a.layer(stage, layer), b.layer(stage, layer))
                  for layer in a.layers for stage in LLM_STAGES]
        for what, x, y in pairs:
            if x.shape != y.shape or not torch.allclose(x.double(), y.double(), rtol=1e-5, atol=1e-6):
                return f"sample {index}, {what}: replayed states differ from the real ones"
    return None
