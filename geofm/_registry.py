"""One generic name -> object registry, reused for backbones, weights and sensors.

Design (see STYLE.md 2.5): explicit names given at registration (never
``fn.__name__``), a duplicate name is an error (timm only warns), a miss raises
:class:`~geofm.errors.UnknownNameError` with ``difflib`` suggestions and the
sorted names, and listing uses :mod:`fnmatch` globs.

Reference: the idea follows timm's ``timm/models/_registry.py`` and torchao's
type-keyed transforms; the code is geofm's own.

Example:
    >>> reg: Registry[int] = Registry("number")
    >>> reg.add("one", 1)
    >>> reg.get("one")
    1
    >>> reg.list("o*")
    ['one']
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from geofm.errors import UnknownNameError

__all__ = ["INIT_ARGS_ATTR", "MODULES", "HubMixin", "Registry", "register_module"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from explicit names to objects of one kind.

    Args:
        kind: What the registry holds, used in error messages ("backbone",
            "sensor", "weights").

    Raises:
        ValueError: On registration of an empty or duplicate name.
        UnknownNameError: On lookup of a name that is not registered.

    Example:
        >>> reg: Registry[str] = Registry("colour")
        >>> @reg.register("red")
        ... def make_red() -> str:
        ...     return "#f00"
        >>> reg.get("red")()
        '#f00'
        >>> reg.get("rde")
        Traceback (most recent call last):
        ...
        geofm.errors.UnknownNameError: Unknown colour 'rde'. Did you mean 'red'? Available: red.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        """Register ``item`` under ``name``.

        Args:
            name: Unique, non-empty name.
            item: The object to register.

        Raises:
            ValueError: If ``name`` is empty or already registered.

        Example:
            >>> reg: Registry[int] = Registry("number")
            >>> reg.add("two", 2)
            >>> reg.add("two", 3)
            Traceback (most recent call last):
            ...
            ValueError: number 'two' is already registered. ...
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}.")
        if name in self._items:
            raise ValueError(
                f"{self.kind} {name!r} is already registered. "
                "Pick another name or remove the first registration."
            )
        self._items[name] = item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; returns the object unchanged.

        Args:
            name: Unique, non-empty name.

        Returns:
            A decorator that registers its argument and returns it.

        Example:
            >>> reg: Registry[type] = Registry("class")
            >>> @reg.register("my_int")
            ... class MyInt(int):
            ...     pass
            >>> reg.get("my_int") is MyInt
            True
        """

        def decorator(item: T) -> T:
            self.add(name, item)
            return item

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered under ``name``.

        Args:
            name: A registered name.

        Returns:
            The registered object.

        Raises:
            UnknownNameError: If ``name`` is not registered; the message
                suggests close names and lists every registered name.

        Example:
            >>> reg: Registry[int] = Registry("number")
            >>> reg.add("one", 1)
            >>> reg.get("one")
            1
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        """Build the "unknown name" message with suggestions.

        Args:
            name: The name that was not found.

        Returns:
            A one-line message: what was wrong, close matches, and all names.

        Example:
            >>> reg: Registry[int] = Registry("number")
            >>> reg.add("one", 1)
            >>> reg.unknown_message("zero")
            "Unknown number 'zero'. Available: one."
        """
        names = sorted(self._items)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = ""
        if close:
            hint = " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        available = ", ".join(names) if names else "(none registered)"
        return f"Unknown {self.kind} {name!r}.{hint} Available: {available}."

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the ``fnmatch`` glob ``pattern``.

        Args:
            pattern: Shell-style glob, e.g. ``"vit_*"``; ``"*"`` lists all.

        Returns:
            Sorted list of matching names.

        Example:
            >>> reg: Registry[int] = Registry("number")
            >>> reg.add("one", 1); reg.add("two", 2)
            >>> reg.list("t*")
            ['two']
        """
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def items(self) -> Iterator[tuple[str, T]]:
        """Iterate over ``(name, object)`` pairs in sorted name order.

        Returns:
            An iterator of pairs.

        Example:
            >>> reg: Registry[int] = Registry("number")
            >>> reg.add("one", 1)
            >>> list(reg.items())
            [('one', 1)]
        """
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry(kind={self.kind!r}, size={len(self._items)})"


# ---------------------------------------------------------------------------
# Rebuildable modules: classes whose instances record their constructor arguments
# ---------------------------------------------------------------------------

#: Module classes that :func:`geofm.hub.save_pretrained` can name in ``config.json``,
#: by registered name. Filled by :func:`register_module`.
MODULES: Registry[type] = Registry("module class")

#: Attribute under which an instance of a registered class keeps its constructor
#: arguments (a plain ``dict``: not a submodule, not in the state dict).
INIT_ARGS_ATTR = "init_args"

C = TypeVar("C", bound=type)


def register_module(name: str | None = None) -> Callable[[C], C]:
    """Register a module class so saved models can name it and rebuild it.

    Instances of a registered class record the arguments they were built with
    in ``instance.init_args`` (a ``dict`` bound through the constructor's
    signature, defaults applied; ``*args`` under ``"*args"``). Only instances of
    exactly the registered class record them: a subclass must be registered
    itself. :func:`geofm.hub.register_module` is the public name of this call.

    Args:
        name: Registered name (default: the class name). Must be unique.

    Returns:
        A class decorator returning the class itself (its ``__init__`` wrapped).

    Raises:
        ValueError: If the name is already registered.

    Example:
        >>> import torch
        >>> @register_module("DocTiny")
        ... class DocTiny(torch.nn.Module):
        ...     def __init__(self, width: int, scale: float = 2.0) -> None:
        ...         super().__init__()
        ...         self.proj = torch.nn.Linear(width, width)
        >>> DocTiny(4).init_args
        {'width': 4, 'scale': 2.0}
    """

    def decorator(cls: C) -> C:
        key = name or cls.__name__
        original = cls.__init__  # type: ignore[misc]
        signature = inspect.signature(original)

        @functools.wraps(original)
        def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if type(self) is not cls:
                return
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded: dict[str, Any] = {}
            for param, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[param].kind
                if kind is inspect.Parameter.VAR_POSITIONAL:
                    recorded["*args"] = list(value)
                elif kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value)
                else:
                    recorded[param] = value
            object.__setattr__(self, INIT_ARGS_ATTR, recorded)

        cls.__init__ = recording_init  # type: ignore[misc]
        MODULES.add(key, cls)
        cls.registered_name = key  # type: ignore[attr-defined]
        return cls

    return decorator


def _hub_function(name: str) -> Callable[..., Any]:
    # geofm.hub sits above every model class; it is bound at call time, never imported here.
    module = importlib.import_module("geofm.hub.rebuild")
    function: Callable[..., Any] = getattr(module, name)
    return function


class HubMixin:
    """Hugging Face-style ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` methods.

    Mixed into geofm's backbones and task models; each method forwards to the
    function of the same name in :mod:`geofm.hub` (bound when first called, so
    the lower layers never import the hub layer).

    Example:
        >>> import tempfile, torch, geofm
        >>> model = geofm.create_backbone("resnet18", in_chans=2).eval()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = model.save_pretrained(tmp)
        ...     again = geofm.Backbone.from_pretrained(tmp)
        >>> x = torch.randn(1, 2, 32, 32)
        >>> torch.equal(model.embed(x), again.embed(x))
        True
    """

    def save_pretrained(self, directory: Any, *, metrics: Any = None) -> Any:
        """Save this model with :func:`geofm.hub.save_pretrained`.

        Args:
            directory: Output folder.
            metrics: Evaluation results for the model card, or ``None``.

        Returns:
            The folder (a :class:`~pathlib.Path`).
        """
        return _hub_function("save_pretrained")(self, directory, metrics=metrics)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool = False,
        revision: str | None = None,
        commit_message: str = "Upload geofm model",
        metrics: Any = None,
    ) -> str:
        """Upload this model with :func:`geofm.hub.push_to_hub`.

        Args:
            repo_id: ``"org/name"`` on the Hugging Face Hub.
            token: Hub token (default: the one huggingface_hub finds).
            private: Create the repo as private.
            revision: Branch to push to.
            commit_message: Commit message.
            metrics: Evaluation results for the model card.

        Returns:
            The commit URL.
        """
        url: str = _hub_function("push_to_hub")(
            self,
            repo_id,
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message,
            metrics=metrics,
        )
        return url

    @classmethod
    def from_pretrained(
        cls, repo_id_or_directory: Any, *, revision: str | None = None, cache_dir: Any = None
    ) -> Any:
        """Rebuild a saved model with :func:`geofm.hub.from_pretrained`, checking its class.

        Args:
            repo_id_or_directory: Local folder or hub repo id.
            revision: Hub revision (branch, tag or commit).
            cache_dir: huggingface_hub cache directory.

        Returns:
            The model, in eval mode.

        Raises:
            TypeError: If the saved model is not an instance of this class.
        """
        model = _hub_function("from_pretrained")(
            repo_id_or_directory, revision=revision, cache_dir=cache_dir
        )
        if not isinstance(model, cls):
            raise TypeError(
                f"{repo_id_or_directory} holds a {type(model).__name__}, not a {cls.__name__}. "
                "Load it with geofm.hub.from_pretrained to get whatever it holds."
            )
        return model
