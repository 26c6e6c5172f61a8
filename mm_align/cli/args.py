"""How the command line is read: no abbreviated flags, a suggestion for a mistyped one,
``@args.txt`` files and ``--config FILE`` (YAML or JSON; a run's ``config.json`` too).

Precedence: a flag on the command line beats the config file, which beats the default.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Parser", "add_config_option", "apply_config", "load_config", "parse", "suggest_flag"]

# A run's config.json records these besides its options; they are not options.
_RECORD_KEYS = ("command", "config", "identity")
# Config keys spelled as their fields whose flags write another destination.
_ALIASES = {"controls": "control"}


class Parser(argparse.ArgumentParser):
    """Every parser of ``mm-align``: no abbreviations (``--batch`` is not ``--batch-size``),
    ``@FILE`` reads arguments from FILE (shell words, ``#`` comments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("fromfile_prefix_chars", "@")
        super().__init__(*args, **kwargs)

    def convert_arg_line_to_args(self, arg_line: str) -> list[str]:
        return shlex.split(arg_line, comments=True)


def suggest_flag(parser: argparse.ArgumentParser, unknown: str) -> str:
    """`` (did you mean --batch-size?)`` for a mistyped flag of ``parser``, else ``""``.

    >>> p = Parser(); _ = p.add_argument("--batch-size")
    >>> suggest_flag(p, "--batchsize=4")
    ' (did you mean --batch-size?)'
    """
    flag = unknown.split("=", 1)[0]
    if not flag.startswith("-"):
        return ""
    options = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    close = difflib.get_close_matches(flag, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def load_config(path: str | Path) -> dict[str, Any]:
    """The options in a YAML or JSON file (a mapping of option names to values; a run's
    ``config.json`` gives its recorded options).

    Raises:
        ValueError: the file is missing, unreadable, not a mapping of names.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file")
    import yaml  # light; YAML is a superset of JSON, so one reader takes both

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problem = " ".join(str(err).split())  # the parser's line and column, on one line
        raise ValueError(f"--config {path} cannot be read as YAML or JSON: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"--config {path} must hold a mapping of option names to values")
    if isinstance(data.get("config"), dict) and "command" in data:  # a run's config.json
        return {"command": data["command"], **data["config"]}
    return {k.replace("-", "_"): v for k, v in data.items()}


def apply_config(parser: argparse.ArgumentParser, options: Mapping[str, Any], command: str,
                 source: str) -> None:
    """Make ``options`` the defaults of ``parser`` (the sub-command ``command``'s), so flags
    given on the command line still win; options the file gives are no longer required.

    Raises:
        ValueError: the file is another command's run config, or names an option this
            command does not have (with the closest valid name).
    """
    recorded = options.get("command")
    if recorded not in (None, command) and not (recorded == "score" and command == "sweep"):
        raise ValueError(f"--config {source} records a {recorded} run, not a {command} run")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    defaults: dict[str, Any] = {}
    for key, value in options.items():
        if key in _RECORD_KEYS:
            continue
        dest = _ALIASES.get(key, key)
        if dest in actions:
            defaults[dest] = list(value) if isinstance(value, (list, tuple)) else value
            actions[dest].required = False
        elif value in (None, [], {}, ()):
            continue  # a recorded field this command sets another way (sweep's projector)
        else:
            close = difflib.get_close_matches(key, list(actions), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"--config {source}: {command} has no option {key!r}{hint}")
    parser.set_defaults(**defaults)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` on a sub-command parser."""
    parser.add_argument("--config", metavar="FILE",
                        help="read options from a YAML or JSON file (a run's config.json too); "
                             "flags given here override it")


def _command(argv: Sequence[str], commands: Mapping[str, argparse.ArgumentParser]) -> str | None:
    """The sub-command of ``argv``: its first word that is not a global flag."""
    return next((word for word in argv if not word.startswith("-")), None) if argv else None


def parse(parser: Parser, commands: Mapping[str, argparse.ArgumentParser],
          argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed by ``parser``, whose sub-command parsers are ``commands``: the
    sub-command's ``--config`` file read first (its options become defaults), an unknown flag
    refused by the sub-command with the closest valid flag.

    Raises:
        ValueError: the config file is unreadable or names an unknown option.
        SystemExit: argparse's own usage errors (exit code 2).
    """
    argv = parser._read_args_from_files(list(argv))  # @args.txt, before looking for --config
    name = _command(argv, commands)
    sub = commands.get(name or "")
    if sub is not None:
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--config")
        found, _ = pre.parse_known_args(argv[argv.index(name) + 1:])  # type: ignore[arg-type]
        if found.config:
            apply_config(sub, load_config(found.config), sub.prog.split()[-1], found.config)
    args, extras = parser.parse_known_args(argv)
    if extras:
        where = sub if sub is not None else parser
        hints = "".join(suggest_flag(where, word) for word in extras)
        where.error(f"unrecognized arguments: {' '.join(extras)}{hints}")
    return args
