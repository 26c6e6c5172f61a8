"""What a model family delivers: the :class:`Representation` of one sample.

Every adapter (one per family, see :mod:`mm_align.adapters.registry`) turns an image-text pair
into a ``Representation``; the pipeline reduces it to numbers and never looks inside the model.
The contract, for a sample of ``N_v`` vision rows, ``N_i`` image tokens, ``N_t`` text tokens:

=============  =====================================  ================================
key            what                                   shape
=============  =====================================  ================================
``vision``     the vision encoder's output, as the    ``(N_v, d_vision)``
               projector receives it (eRank1)
``projector``  the projector's output: the image      ``(N_i, d_llm)``
               tokens fed to the LLM (eRank2)
``image``      LLM last layer at the image tokens     ``(N_i, d_llm)``
               of the image seen alone (eRank3)
``text``       LLM last layer, text-only pass, at     ``(N_t, d_llm)``
               the text tokens (eRank4)
``joint``      LLM last layer, image+text pass, at    ``(N_i + N_t, d_llm)``
               the image and text tokens (eRank5)
=============  =====================================  ================================

Tensors live on the model's device in the model's dtype (metrics cast to float64). The LLM
stages are at the last hidden state (after the final norm, the ``hidden_states[-1]``
convention); :meth:`Representation.layer` reads other captured layers, indexed like
``output_hidden_states`` (0 = embedding output, negative counted from the end).
``masks`` and ``inputs`` record which tokens were kept and what the model saw;
:meth:`Representation.joint_sequence` gives the joint pass at every position, the tokens the
masks leave out (BOS, markers, template) included.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

import torch

from mm_align.stages import LLM_STAGES, STAGES

__all__ = ["Representation", "normalize_layer", "normalize_layers"]


def normalize_layer(layer: int, num_hidden_states: int) -> int:
    """``layer`` (negative allowed) as a non-negative ``output_hidden_states`` index.

    Raises:
        TypeError: not an integer. IndexError: out of range (the message gives the range).
    """
    if isinstance(layer, bool):
        raise TypeError(f"layer indices must be integers, got {layer!r}")
    index = operator.index(layer)
    if not -num_hidden_states <= index < num_hidden_states:
        raise IndexError(
            f"layer {layer} is out of range: this model has {num_hidden_states} hidden states "
            f"(valid: {-num_hidden_states} .. {num_hidden_states - 1})"
        )
    return index % num_hidden_states


def normalize_layers(layers: Sequence[int] | None, num_hidden_states: int) -> tuple[int, ...]:
    """Sorted non-negative indices in the ``output_hidden_states`` convention (0 = embedding
    output, ``num_hidden_states - 1`` = after the final norm), always including the last."""
    out = {num_hidden_states - 1}
    out.update(normalize_layer(layer, num_hidden_states) for layer in layers or ())
    return tuple(sorted(out))


class Representation(Mapping[str, torch.Tensor]):
    """The five representations of one image-text sample (see the module doc): a read-only
    mapping from stage name to a 2-D ``(tokens, dim)`` tensor."""

    def __init__(
        self,
        *,
        vision: torch.Tensor,
        projector: torch.Tensor,
        llm: Mapping[str, Mapping[int, torch.Tensor]],
        num_hidden_states: int,
        masks: Mapping[str, torch.Tensor],
        inputs: Mapping[str, Mapping[str, torch.Tensor]],
        joint_rest: Mapping[int, torch.Tensor] | None = None,
    ) -> None:
        self._vision_stages = {"vision": vision, "projector": projector}
        self._llm = {stage: dict(by_layer) for stage, by_layer in llm.items()}
        # The joint pass at the positions masks["joint"] leaves out (BOS, markers, template),
        # per captured layer: a few rows that let joint_sequence() rebuild the whole pass.
        self._joint_rest = None if joint_rest is None else dict(joint_rest)
        self._num_hidden_states = num_hidden_states
        self.masks: Mapping[str, torch.Tensor] = MappingProxyType(dict(masks))
        """1-D bool tensors: ``"image"`` and ``"joint"`` over ``inputs["joint"]["input_ids"][0]``,
        ``"text"`` over ``inputs["text"]["input_ids"][0]``."""
        self.inputs: Mapping[str, Mapping[str, torch.Tensor]] = MappingProxyType(
            {name: MappingProxyType(dict(value)) for name, value in inputs.items()}
        )
        """The unpadded model inputs (batch dimension 1) of the ``"joint"`` and ``"text"`` passes."""

    @property
    def layers(self) -> tuple[int, ...]:
        """Captured LLM layers, non-negative, in the ``output_hidden_states`` convention."""
        return tuple(sorted(self._llm["joint"]))

    def layer(self, stage: str, layer: int) -> torch.Tensor:
        """``stage`` (``"image"``, ``"text"`` or ``"joint"``) at ``layer`` (negative allowed):
        ``(tokens, hidden)`` states."""
        if stage not in LLM_STAGES:
            raise KeyError(f"per-layer states exist for {LLM_STAGES}, not {stage!r}")
        wanted = normalize_layer(layer, self._num_hidden_states)
        if wanted not in self._llm[stage]:
            raise KeyError(f"layer {layer} was not captured; captured layers: {self.layers}")
        return self._llm[stage][wanted]

    def joint_sequence(self, layer: int) -> torch.Tensor:
        """The joint pass at EVERY position of ``inputs["joint"]`` (special and template
        tokens included), in position order: ``(L_joint, hidden)`` at ``layer``.

        Raises:
            KeyError: the layer was not captured, or the adapter kept only the masked rows.
        """
        rows = self.layer("joint", layer)
        if self._joint_rest is None:
            raise KeyError("this representation keeps only the joint rows its mask selects")
        rest = self._joint_rest[normalize_layer(layer, self._num_hidden_states)]
        mask = self.masks["joint"].to(rows.device)
        out = rows.new_empty((mask.shape[0], rows.shape[1]))
        out[mask], out[~mask] = rows, rest.to(rows.device)
        return out

    def __getitem__(self, stage: str) -> torch.Tensor:
        if stage in self._vision_stages:
            return self._vision_stages[stage]
        if stage in self._llm:
            return self._llm[stage][self._num_hidden_states - 1]
        raise KeyError(f"unknown stage {stage!r}; stages are {STAGES}")

    def __iter__(self) -> Iterator[str]:
        return iter(STAGES)

    def __len__(self) -> int:
        return len(STAGES)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{stage}={tuple(self[stage].shape)}" for stage in STAGES)
        return f"Representation({shapes}, layers={self.layers})"
