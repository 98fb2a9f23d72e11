"""Module selection by name patterns, shared by the LoRA modules of this package.

A pattern is an :mod:`fnmatch` glob matched against a module's full dotted name
or any dotted suffix of it, PEFT's ``target_modules`` rule with globs
(https://github.com/huggingface/peft, ``check_target_module_exists``): ``"qkv"``
matches ``blocks.0.attn.qkv`` and ``"blocks.*.attn.proj"`` every attention
output projection.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Collection, Iterable, Sequence

from torch import nn

from geofm.errors import UnknownNameError

__all__ = ["match_modules", "matches"]


def _close_names(pattern: str, names: Iterable[str]) -> list[str]:
    candidates: set[str] = set()
    for name in names:
        parts = name.split(".")
        candidates.update(".".join(parts[i:]) for i in range(len(parts)))
    return difflib.get_close_matches(pattern, sorted(candidates), n=5, cutoff=0.5)


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether one of ``patterns`` matches the dotted ``name`` or one of its dotted suffixes.

    Args:
        name: Full dotted module name, e.g. ``"blocks.0.attn.qkv"``.
        patterns: :mod:`fnmatch` globs.

    Returns:
        ``True`` if any pattern matches.

    Example:
        >>> matches("blocks.0.attn.qkv", ("qkv",)), matches("blocks.0.attn.qkv", ("attn",))
        (True, False)
    """
    return any(
        fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, "*." + p) for p in patterns
    )


def match_modules(
    model: nn.Module,
    patterns: Sequence[str],
    *,
    field_name: str,
    exclude: Sequence[str] = (),
    types: tuple[type[nn.Module], ...] = (),
    skip_inside: Collection[str] = (),
) -> dict[str, nn.Module]:
    """The submodules of ``model`` selected by ``patterns``, in model order.

    A module is selected when it matches one of ``patterns``, none of
    ``exclude`` and, if ``types`` is not empty, is an instance of one of them.
    Every pattern must select at least one module.

    Args:
        model: The module searched (its own name ``""`` is never selected).
        patterns: Globs (see the module docstring).
        field_name: The config field the patterns come from, named in errors.
        exclude: Globs of modules never selected.
        types: Keep only instances of these types (empty: any type).
        skip_inside: Names of modules whose submodules are never candidates (the
            inner ``lora_A``/``lora_B`` of existing LoRA layers).

    Returns:
        ``{dotted name: module}``.

    Raises:
        UnknownNameError: If a pattern selects nothing; the message lists close
            module names, or says which of ``exclude`` / ``types`` removed its matches.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
        >>> list(match_modules(model, ("*",), field_name="targets", types=(nn.Linear,)))
        ['0', '2']
    """
    hidden = tuple(f"{h}." for h in skip_inside)
    named = [(n, m) for n, m in model.named_modules() if n and not n.startswith(hidden)]
    names = [n for n, _ in named]
    selected: dict[str, nn.Module] = {}
    for pattern in patterns:
        hits = {n: m for n, m in named if matches(n, (pattern,))}
        kept = {
            n: m
            for n, m in hits.items()
            if not matches(n, exclude) and (not types or isinstance(m, types))
        }
        if hits and not kept:
            raise UnknownNameError(
                f"{field_name} pattern {pattern!r} matches modules, but none left after "
                f"exclude={tuple(exclude)!r} and target_types="
                f"{tuple(t.__name__ for t in types)!r}. Loosen one of them."
            )
        if not kept:
            close = _close_names(pattern, names)
            hint = f" Close module names: {', '.join(close)}." if close else ""
            sample = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise UnknownNameError(
                f"{field_name} pattern {pattern!r} matches no module.{hint} "
                f"Patterns are globs on full dotted names or their suffixes (modules: {sample})."
            )
        selected.update(kept)
    return {n: selected[n] for n in names if n in selected}
