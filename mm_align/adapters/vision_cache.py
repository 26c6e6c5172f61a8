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

Which models replay exactly is not assumed: :func:`check_replay` scores a batch for real
and replayed, compares every stage and layer, and stores the verdict per vision identity.
A family whose connector takes more than one tensor, is called several times per batch, or
whose model reads other outputs of the vision tower (Qwen3-VL's deepstack features) fails
that check and is scored without reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mm_align.adapters.features import feature_rows, features_owner, shadowing

__all__ = ["FeatureStore", "ReuseStats", "check_replay", "reusing_vision", "vision_identity"]

_VERDICT = "replay.json"


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
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            layout = json.loads((fh.metadata() or {})["layout"])
        return load_file(str(path))["input"], layout

    def put(self, identity: str, key: str, inputs: torch.Tensor, layout: dict[str, Any]) -> None:
        """Store one call (written atomically: a reader never sees half a file)."""
        cpu = inputs.detach().to("cpu", copy=True).contiguous()
        if self.root is None:
            self._memory[(identity, key)] = (cpu, layout)
            return
        folder = self._dir(identity)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        save_file({"input": cpu}, str(tmp), metadata={"layout": json.dumps(layout)})
        os.replace(tmp, folder / f"{key}.safetensors")

    def verdict(self, identity: str) -> dict[str, Any] | None:
        """What :func:`check_replay` found for this vision identity, if it ran."""
        if self.root is None:
            return self._verdicts.get(identity)
        path = self._dir(identity) / _VERDICT
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def set_verdict(self, identity: str, verdict: dict[str, Any]) -> None:
        if self.root is None:
            self._verdicts[identity] = verdict
            return
        self._dir(identity).mkdir(parents=True, exist_ok=True)
        (self._dir(identity) / _VERDICT).write_text(json.dumps(verdict, indent=2), encoding="utf-8")


@dataclass
class ReuseStats:
    """What one :func:`reusing_vision` block did: calls run for real (``computed``) and
    replayed from the store (``reused``); ``problem``: why a computed call was not stored."""

    identity: str
    computed: int = 0
    reused: int = 0
    problem: str | None = None


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
    return layout if isinstance(layout, str) else (args[0], layout)


@contextmanager
def reusing_vision(adapter: Any, store: FeatureStore, identity: str | None = None) -> Iterator[ReuseStats]:
    """Inside the block, ``adapter``'s model replays cached connector inputs instead of
    running its vision tower where it can (see the module doc); yields live counts."""
    owner = features_owner(adapter.model)
    original = owner.get_image_features
    stats = ReuseStats(identity or vision_identity(adapter))

    def replaying(*args: Any, **kwargs: Any) -> Any:
        key = _call_key(stats.identity, args, kwargs)
        hit = store.get(stats.identity, key)
        if hit is not None:
            stats.reused += 1
            inputs, layout = hit
            weight = next(adapter.projector.parameters())
            return _rebuild(layout, adapter.projector(inputs.to(weight.device)))
        with _connector_calls(adapter.projector) as calls:
            returned = original(*args, **kwargs)
        stats.computed += 1
        recorded = _record(calls, returned)
        if isinstance(recorded, str):
            stats.problem = recorded
        else:
            store.put(stats.identity, key, *recorded)
        return returned

    with shadowing(owner, "get_image_features", replaying):
        yield stats


def _mismatch(real: Sequence[Any], replayed: Sequence[Any]) -> str | None:
    """The first stage or layer where two lists of representations differ, in words."""
    for index, (a, b) in enumerate(zip(real, replayed)):
        pairs = [(stage, a[stage], b[stage]) for stage in a]
        pairs += [(f"{stage} layer {layer}", a.layer(stage, layer), b.layer(stage, layer))
                  for layer in a.layers for stage in ("image", "text", "joint")]
        for what, x, y in pairs:
            if x.shape != y.shape or not torch.allclose(x.double(), y.double(), rtol=1e-5, atol=1e-6):
                return f"sample {index}, {what}: replayed states differ from the real ones"
    return None


def check_replay(adapter: Any, store: FeatureStore, images: Sequence[Any], texts: Sequence[str],
                 layers: Sequence[int] | None = None, identity: str | None = None) -> str | None:
    """Whether replay gives this model's real numbers: None if it does, else why not.

    Scores ``images`` / ``texts`` (one batch) with the vision tower (recording into
    ``store``), then again from the store, and compares every stage and layer. The verdict
    is stored per vision identity and reused, so each vision tower is checked once
    (``identity``: the adapter's :func:`vision_identity`, when known).
    """
    identity = identity or vision_identity(adapter)
    known = store.verdict(identity)
    if known is not None:
        return known.get("problem")
    problem: str | None
    try:
        with reusing_vision(adapter, store, identity) as stats:
            real = adapter.represent_batch(images, texts, layers=layers)
            replayed = adapter.represent_batch(images, texts, layers=layers)
        problem = stats.problem or (None if stats.reused else "no get_image_features call was replayed")
        problem = problem or _mismatch(real, replayed)
    except (RuntimeError, ValueError, TypeError, AttributeError, KeyError) as err:
        problem = f"replay failed ({type(err).__name__}: {err})"
    store.set_verdict(identity, {"problem": problem, "model_type": adapter.model.config.model_type})
    return problem
