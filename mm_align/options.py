"""How a config field is declared (:func:`option`), documented (:func:`field_doc` for the
field, :func:`flag_help` for its flag), parsed from text and turned into argparse options.

Shared by every config class of :mod:`mm_align.config`; a leaf of the option layer (no torch,
no PIL).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any

__all__ = [
    "EXTRA_METRICS",
    "OWN_MODEL_ARGS",
    "LayerSpec",
    "add_arguments",
    "field_doc",
    "flag_help",
    "option",
    "options_doc",
    "parse_ks",
    "parse_layers",
    "parse_metrics",
    "parse_model_args",
]

# from_pretrained arguments that have their own option: --model-args must not set them.
OWN_MODEL_ARGS = {"revision": "--revision", "trust_remote_code": "--trust-remote-code",
                  "attn_implementation": "--attn-implementation", "dtype": "--dtype",
                  "torch_dtype": "--dtype", "device_map": "--device-map"}
# Alignment metrics a run may add to eRank (always computed), from the same captured states.
EXTRA_METRICS = ("cka", "cknna", "knn", "mir", "rankme")

LayerSpec = tuple[int, ...] | str | None
"""``None`` (last layer only), ``"all"`` or explicit indices (``output_hidden_states``
convention, negative counted from the end)."""


def option(default: Any, help: str, group: str, *, doc: str | None = None, identity: bool = False,
           **cli: Any) -> Any:
    """A config field: its default, its CLI flag's ``help`` and group, the field's own ``doc``
    (what a value of the field means; default: ``help``), and whether it changes the numbers
    (``identity``: resuming with another value is refused). ``cli`` goes to argparse
    (``flags``, ``type``, ``choices``, ``metavar``; ``flags=()`` keeps it off the CLI).

    A field that is True by default has a flag that turns it off, so its flag's help
    describes the opposite of the field: such a field must give ``doc``.
    """
    if default is True and doc is None:
        raise TypeError(f"an option True by default needs doc= (its flag's help {help!r} "
                        "describes turning it off)")
    # argparse expands help text (%% is its %); the field doc is read as written
    return field(default=default, metadata={"help": help, "doc": doc or help.replace("%%", "%"), "group": group,
                                            "identity": identity, **cli})


def field_doc(config: type, name: str) -> str:
    """The documentation of the field ``name`` of the config class ``config``: what its
    value means (for True/False: what True means), as opposed to its CLI flag's help."""
    return {f.name: f.metadata["doc"] for f in dataclasses.fields(config)}[name]


def flag_help(config: type, name: str) -> str:
    """The help of the CLI flag that sets the field ``name`` of ``config``."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(config)}[name]


def options_doc(config: type, skip: Sequence[str] = ()) -> str:
    """A docstring section listing every field of ``config`` (but ``skip``) with its
    default and :func:`field_doc`, e.g. for ``help(mm_align.score)``."""
    lines = ["Options (keyword arguments):", ""]
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        default = "required" if f.metadata.get("required") else f"default {f.default!r}"
        doc = f.metadata["doc"].replace("%%", "%")
        lines.append(textwrap.fill(f"{f.name} ({default}): {doc}", 96, initial_indent="    ",
                                   subsequent_indent="        ", break_on_hyphens=False))
    return "\n".join(lines)


def parse_layers(layers: str | Sequence[int] | None) -> LayerSpec:
    """``"all"``, ``"0,8,-1"`` or integers -> ``"all"`` or a tuple of ints; ``None`` stays.

    Raises:
        ValueError: not 'all' and not comma-separated integers (an empty string included).
    """
    if layers is None:
        return None
    if isinstance(layers, str):
        if layers.strip() == "all":
            return "all"
        parts = [v.strip() for v in layers.split(",")]
        if not layers.strip() or not all(parts):
            raise ValueError(f"layers takes 'all' or comma-separated integers, not {layers!r}")
        try:
            return tuple(int(v) for v in parts)
        except ValueError:
            raise ValueError(f"layers takes 'all' or comma-separated integers, not {layers!r}") from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in layers):
        raise ValueError(f"layers must be integers, got {list(layers)!r}")
    return tuple(layers)


def parse_metrics(metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"rankme,cka"`` or names -> a sorted tuple of distinct extra metrics.

    ``erank`` is accepted and dropped (it is always computed), so ``erank,cka`` and ``cka``
    are the same run and one may resume the other.

    >>> parse_metrics("mir, rankme,erank,mir")
    ('mir', 'rankme')

    Raises:
        ValueError: a name that is not a metric; the message lists the valid ones.
    """
    if metrics is None:
        return ()
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = {str(item).strip().lower() for item in items} - {""}
    unknown = sorted(names - {"erank", *EXTRA_METRICS})
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid: erank, {', '.join(EXTRA_METRICS)}")
    return tuple(sorted(names - {"erank"}))


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def _model_arg_value(text: str) -> Any:
    """``"4"`` -> 4, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):  # not float(): "nan" or "inf" are names, not numbers, here
        return float(text)
    return text


def parse_model_args(model_args: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """lmms-eval's ``key=value,key=value`` -> a dict for ``from_pretrained``; values that
    look like an int, a float or true/false become one. A mapping is checked and copied.

    >>> parse_model_args("gguf_file=m.gguf,low_cpu_mem_usage=true,max_memory_gb=1.5")
    {'gguf_file': 'm.gguf', 'low_cpu_mem_usage': True, 'max_memory_gb': 1.5}

    Raises:
        ValueError: an item is not ``key=value``, a key is not an identifier or repeats, or
            it names an argument that has its own option (``trust_remote_code``, ...).
    """
    if model_args is None:
        return {}
    if isinstance(model_args, str):
        items = [item.strip() for item in model_args.split(",") if item.strip()]
        if any("=" not in item for item in items):
            raise ValueError(f"model_args takes key=value,key=value, not {model_args!r}")
        pairs = [tuple(part.strip() for part in item.split("=", 1)) for item in items]
        parsed = {key: _model_arg_value(value) for key, value in pairs}
        if len(parsed) < len(pairs):
            raise ValueError(f"model_args repeats a key: {model_args!r}")
    else:
        parsed = dict(model_args)
    for key in parsed:
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"model_args keys must be argument names, got {key!r}")
        if key in OWN_MODEL_ARGS:
            raise ValueError(f"set {key} with {OWN_MODEL_ARGS[key]} (API: its own option), not model_args")
    return parsed


def at_least(name: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def one_of(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(map(str, choices))}")


def positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def parse_ks(ks: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,2,4"`` or integers -> a sorted tuple of distinct ks >= 1."""
    try:
        values = [int(v) for v in ks.split(",")] if isinstance(ks, str) else [int(v) for v in ks]
    except ValueError:
        raise ValueError(f"k takes comma-separated integers, not {ks!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"every k must be >= 1, got {ks!r}")
    return tuple(sorted(set(values)))


def _flags(f: dataclasses.Field) -> tuple[str, ...]:
    return f.metadata.get("flags", ("--" + f.name.replace("_", "-"),))


def add_arguments(parser: argparse.ArgumentParser, config: type) -> None:
    """One argparse option per field of ``config``, in argument groups, defaults shown."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        meta = f.metadata
        flags = _flags(f)
        if not flags:
            continue
        group = groups.get(meta["group"]) or groups.setdefault(
            meta["group"], parser.add_argument_group(meta["group"].lower() + " options")
        )
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
        kwargs.update({k: meta[k] for k in ("type", "choices", "metavar", "required") if k in meta})
        if f.default is True:
            kwargs["action"] = "store_false"
        elif f.default is False:
            kwargs["action"] = "store_true"
        elif not meta.get("required"):
            kwargs["default"] = f.default
            if f.default not in (None, ()):
                kwargs["help"] += " (default: %(default)s)"
        group.add_argument(*flags, **kwargs)
