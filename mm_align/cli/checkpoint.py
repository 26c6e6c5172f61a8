"""A ``--model`` that cannot be found, said in one line before torch and transformers load.

transformers would answer a missing folder with a hub-id syntax error ("Repo id must use
alphanumeric chars") and a mistyped hub id under ``HF_HUB_OFFLINE=1`` with "couldn't connect
to huggingface.co", each after seconds of imports. Here a name that is no folder and cannot
be a hub id is "no such checkpoint folder", and a hub id while offline must be in the local
cache (huggingface_hub's cache lookup: a file check, no network).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["check_model"]

_LOCAL_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith(_LOCAL_PREFIXES) or name.count("/") > 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _cached(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import constants, try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, constants.CONFIG_NAME, revision=revision)
    return isinstance(found, str)  # None: never fetched; a sentinel: known to be absent


def check_model(model: str, revision: str | None = None, option: str = "--model") -> None:
    """Refuse ``model`` when it is neither a folder nor a loadable hub id.

    A local-looking path (absolute, ``./``, ``../``, ``~``) or a name that cannot be a hub
    id must be a folder; a hub id is checked against the local cache only when offline
    (online, the hub answers for itself).

    Raises:
        ValueError: no such checkpoint folder; a hub id offline that is not in the cache.
    """
    path = Path(os.path.expanduser(model))
    if path.is_dir():
        return
    if path.exists():
        raise ValueError(f"{option} {model}: not a checkpoint folder (a file); give the folder "
                         "that holds config.json")
    if not _is_hub_id(model):
        raise ValueError(f"{option} {model}: no such checkpoint folder (and not a hub id)")
    if _offline() and not _cached(model, revision):
        raise ValueError(f"{option} {model}: no such checkpoint folder, and the hub model "
                         f"{model}{'@' + revision if revision else ''} is not in the local cache "
                         "(HF_HUB_OFFLINE is set); check the name, or download it while online")


def check_models(args: argparse.Namespace) -> None:
    """:func:`check_model` for the ``--model`` arguments of a parsed command line: its
    ``models`` (a series: globs are matched later, ``org/name@revision`` names a revision)
    or else its ``model``."""
    series = getattr(args, "models", None)
    for model in series or [args.model]:
        if series and any(c in model for c in "*?["):
            continue  # a sweep's glob: members_of() says when it matches nothing
        if series and "@" in model and not Path(model).exists():
            name, _, revision = model.partition("@")
            check_model(name, revision or None)
        else:
            check_model(model, getattr(args, "revision", None))
