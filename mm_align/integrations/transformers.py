"""``AlignmentCallback``: the probe's scalars next to the loss of a ``transformers.Trainer``.

>>> trainer = Trainer(model=model, args=args, train_dataset=train, processing_class=processor)
>>> AlignmentCallback("data/probe.jsonl", every_n_steps=500, limit=64).attach(trainer)  # doctest: +SKIP
>>> trainer.train()                                                                     # doctest: +SKIP

Every ``every_n_steps`` optimizer steps (and after each evaluation with ``on_evaluate=True``)
the callback runs a :class:`~mm_align.pipeline.probe.Probe` on the model being trained and
logs its ``mm_align/...`` scalars with ``Trainer.log``: they land in ``state.log_history`` and
reach every reporter of ``report_to`` (TensorBoard, W&B, MLflow, ...) at that global step.

Why ``attach(trainer)``: a ``TrainerCallback`` is handed the model and the processor, never
the trainer, and the reporters are callbacks that only see what ``Trainer.log`` sends them;
logging through the trainer is the one way every reporter gets the values at the right step
without patching the training loop.

Under several processes the main one probes (the whole probe set) and logs; see
:mod:`mm_align.pipeline.probe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from mm_align.pipeline.probe import Probe

__all__ = ["AlignmentCallback"]


def _is_processor(thing: Any) -> bool:
    """A multimodal processor (what an adapter needs), not a bare tokenizer."""
    return thing is not None and hasattr(thing, "image_token") and hasattr(thing, "tokenizer")


class AlignmentCallback(TrainerCallback):
    """Probe the model's alignment while a ``Trainer`` trains it (see the module doc).

    Args:
        data: the probe set, any form :class:`~mm_align.pipeline.probe.Probe` takes.
        every_n_steps: probe when the global step is a multiple of this.
        processor: the model's processor; default: the trainer's ``processing_class`` when
            it is one (a bare tokenizer is not), else the one saved with the model.
        out: a series folder for ``mm-align report`` (see :class:`Probe`).
        on_evaluate: also probe after each evaluation (once per step at most).
        options: :class:`~mm_align.config.ScoreConfig` options (``limit``, ``layers``,
            ``metrics``, ``batch_size``, ...).
    """

    def __init__(self, data: Any, every_n_steps: int = 500, processor: Any = None,
                 out: str | Path | None = None, on_evaluate: bool = False, **options: Any) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be at least 1, got {every_n_steps}")
        self.probe = Probe(data, processor=processor, out=out, **options)
        self.every_n_steps = every_n_steps
        self.probe_on_evaluate = on_evaluate
        self.trainer: Trainer | None = None
        self._last_step: int | None = None

    def attach(self, trainer: Trainer) -> AlignmentCallback:
        """Add this callback to ``trainer`` and log through it; returns the callback."""
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        if self.trainer is None:
            raise RuntimeError("AlignmentCallback logs through the trainer: add it with "
                               "AlignmentCallback(...).attach(trainer), not Trainer(callbacks=[...])")

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if state.global_step % self.every_n_steps == 0:
            self._probe(state, control, kwargs)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if self.probe_on_evaluate:
            self._probe(state, control, kwargs)

    def _probe(self, state: TrainerState, control: TrainerControl, event: dict[str, Any]) -> None:
        """Probe the event's model once per global step and log the scalars (main process).

        ``Trainer.log`` clears ``control.should_log`` (meant for the trainer's own logging,
        which comes after this event): it is put back, or the step's loss would not be
        logged and the next logged loss would average two windows."""
        if self._last_step == state.global_step:
            return
        self._last_step = state.global_step
        given = event.get("processing_class")
        model = event.get("model") or self.trainer.model  # type: ignore[union-attr]
        scalars = self.probe(model, given if _is_processor(given) else None, step=state.global_step)
        if scalars:
            should_log = control.should_log
            self.trainer.log(dict(scalars))  # type: ignore[union-attr]
            control.should_log = should_log
