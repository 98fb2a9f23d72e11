"""The examples' command line: one ``Config`` dataclass -> one ``argparse`` parser.

Every example script describes its settings as a frozen dataclass ``Config``
and calls ``config_from_argv(Config)``; each field becomes a flag
(``output_dir`` -> ``--output-dir``) whose help text is the field's trailing
comment. How a field's type becomes a flag:

- ``bool``: ``--name`` / ``--no-name`` (``argparse.BooleanOptionalAction``),
  default kept, so a ``True`` default can be switched off;
- ``Literal["a", "b"]``: ``choices`` (argparse rejects anything else);
- ``tuple[int, ...]`` / ``tuple[float, ...]``: a comma list, ``--depths 2,2,18,2``;
- ``int``, ``float``, ``str``: converted with that type.

A ``subcommand`` field (``Literal`` typed) becomes positional sub-commands
instead of a flag; with none given on the command line, the field's default
is used (``python examples/spectral_earth.py`` = ``... pretrain``).

``progress(steps, desc=..., show=cfg.progress)`` adds a tqdm bar (on stderr)
when tqdm is installed; every example shows bars on its training and
evaluation loops by default and ``--no-progress`` silences them.
``run(main, Config)`` is a script's entry point: parse, call ``main``, print
the result as JSON (without the per-step lists in ``hide``).

``check_choices(cfg)`` repeats the ``Literal`` check for configs built in
Python (``main(Config(...))`` in the tests), where argparse does not run.

The scripts import this file as ``_cli``: ``python examples/<name>.py`` puts
``examples/`` on ``sys.path``, and ``tests/example_loader.py`` adds it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import json
import sys
import textwrap
import tokenize
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

__all__ = ["check_choices", "config_from_argv", "progress", "run"]

T = TypeVar("T")

_SCALARS: dict[Any, Callable[[str], Any]] = {int: int, float: float, str: str}


def _field_comments(config_type: type) -> dict[str, str]:
    """``{field: trailing comment}`` read from the class source ({} if it cannot be read)."""
    try:
        source = textwrap.dedent(inspect.getsource(config_type))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    out: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            text = "; ".join(comments[i] for i in lines if i in comments)
            if text:
                out[node.target.id] = text
    return out


def _comma_list(element: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(element(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma list of {element.__name__} values such as 1,2,3, got {text!r}"
            ) from None

    return parse


def _add_field(
    parser: argparse.ArgumentParser, field: dataclasses.Field[Any], kind: Any, note: str
) -> None:
    flag = f"--{field.name.replace('_', '-')}"
    default = field.default
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else repr(default)
    common: dict[str, Any] = {"default": default, "help": f"{note} (default: {shown})".lstrip()}
    origin, args = get_origin(kind), get_args(kind)
    if kind is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
    elif origin is Literal:
        parser.add_argument(flag, choices=args, type=type(args[0]), **common)
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS:
        parser.add_argument(flag, type=_comma_list(_SCALARS[args[0]]), metavar="A,B,...", **common)
    elif kind in _SCALARS:
        parser.add_argument(flag, type=_SCALARS[kind], **common)
    else:
        raise TypeError(
            f"Config field {field.name!r} has type {kind!r}, which has no command-line form; "
            "use bool, int, float, str, a Literal of str, or tuple[int | float | str, ...]."
        )


def _literal_fields(config_type: type) -> dict[str, tuple[Any, ...]]:
    hints = get_type_hints(config_type)
    return {
        f.name: get_args(hints[f.name])
        for f in dataclasses.fields(config_type)
        if get_origin(hints[f.name]) is Literal
    }


def config_from_argv(
    config_type: type[T], argv: Sequence[str] | None = None, *, subcommand: str | None = None
) -> T:
    """Parse ``argv`` (default ``sys.argv[1:]``) into an instance of the dataclass ``config_type``.

    Args:
        config_type: A dataclass whose fields all have defaults.
        argv: Command-line arguments without the program name.
        subcommand: Name of a ``Literal`` field given as a positional
            sub-command (``pretrain`` / ``finetune``) instead of a flag.

    Returns:
        ``config_type(**parsed)``.

    Raises:
        TypeError: If a field's type has no command-line form (programming error).
        SystemExit: On ``--help``, an unknown flag, a bad value (argparse) or
            a value the ``Config`` itself refuses (its ``ValueError`` is printed
            after the usage line, exit status 2).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     steps: int = 10
        ...     lora: bool = True
        >>> config_from_argv(Config, ["--steps", "3", "--no-lora"])
        Config(steps=3, lora=False)
    """
    module = sys.modules.get(config_type.__module__)
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        description=module.__doc__ if module is not None else None, formatter_class=formatter
    )
    hints = get_type_hints(config_type)
    fields = {f.name: f for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]
    comments = _field_comments(config_type)
    targets = [parser]
    argv = list(sys.argv[1:] if argv is None else argv)
    if subcommand is not None:
        sub = parser.add_subparsers(dest=subcommand)
        targets = [
            sub.add_parser(c, help=f"{c} (see the module docstring)", formatter_class=formatter)
            for c in get_args(hints[subcommand])
        ]
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
            argv = [str(fields[subcommand].default), *argv]  # no sub-command given: the default
    for target in targets:
        for name, field in fields.items():
            if name != subcommand:
                _add_field(target, field, hints[name], comments.get(name, ""))
    args = parser.parse_args(argv)
    try:
        return config_type(**vars(args))
    except ValueError as err:  # a Config.__post_init__ check: argparse's usage + message, exit 2
        target = targets[0]
        if subcommand is not None:
            target = targets[get_args(hints[subcommand]).index(getattr(args, subcommand))]
        target.error(str(err))


def check_choices(cfg: Any) -> None:
    """Raise if a ``Literal`` field of the dataclass ``cfg`` holds a value outside its choices.

    Args:
        cfg: A dataclass instance (built in Python, where argparse's ``choices`` did not run).

    Raises:
        ValueError: Naming the field, the allowed values and the value received.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     loss: Literal["huber", "mae"] = "huber"
        >>> check_choices(Config(loss="l2"))  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ValueError: loss must be one of huber|mae, got 'l2'.
    """
    for name, allowed in _literal_fields(type(cfg)).items():
        value = getattr(cfg, name)
        if value not in allowed:
            raise ValueError(
                f"{name} must be one of {'|'.join(map(str, allowed))}, got {value!r}. "
                f"Pass one of these values (command line: --{name.replace('_', '-')})."
            )


def progress(steps: Iterable[T], *, desc: str, show: bool) -> Iterable[T]:
    """``steps``, wrapped in a tqdm progress bar if ``show`` and tqdm is installed.

    Args:
        steps: What the loop iterates over.
        desc: The bar's label.
        show: The script's ``--progress`` flag.

    Returns:
        ``steps`` or the tqdm wrapper around it.
    """
    if not show:
        return steps
    try:
        from tqdm import tqdm
    except ImportError:  # optional: pip install tqdm (the "examples" extra)
        return steps
    return tqdm(steps, desc=desc)  # type: ignore[no-any-return]


def run(
    main: Callable[[T], dict[str, Any]],
    config_type: type[T],
    *,
    subcommand: str | None = None,
    hide: Sequence[str] = (),
) -> None:
    """Parse ``sys.argv`` into ``config_type``, call ``main`` and print its result as JSON.

    Args:
        main: The script's ``main(cfg) -> dict``.
        config_type: Its ``Config`` dataclass.
        subcommand: See :func:`config_from_argv`.
        hide: Result keys left out of the printout (per-step lists).
    """
    result = main(config_from_argv(config_type, subcommand=subcommand))
    print(json.dumps({k: v for k, v in result.items() if k not in hide}, indent=2))
