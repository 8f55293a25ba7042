"""One registry kind for every pluggable part (timm style): name -> object, errors that list the
available names.

An entry is registered directly (``@REG.register("name")`` on a factory, or ``REG.add(name,
obj)``) or *lazily* as ``"package.module:attr"``: the module is imported the first time that name
is looked up, so choosing a dataset, a reconstruction backend or an index type imports only its
code (and its optional dependencies). ``names()`` lists both kinds, so CLI ``choices`` and error
messages come from the registry instead of being spelled out again.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from geolink.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, lazy: dict[str, str] | None = None):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}
        for name, target in (lazy or {}).items():
            self.add_lazy(name, target)

    def _check_new(self, name: str) -> None:
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} '{name}' registered twice")

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register a factory (or class) under ``name`` (default its ``__name__``)."""

        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            key = name or fn.__name__
            self._check_new(key)
            self._items[key] = fn
            return fn

        return deco

    def add(self, name: str, obj: Any) -> None:
        """Register a ready object (a spec, a class, a factory) under ``name``."""
        self._check_new(name)
        self._items[name] = obj

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attr"``, imported on first lookup of ``name``."""
        if ":" not in target:
            raise ValueError(f"lazy {self.kind} '{name}': expected 'module:attr', got '{target}'")
        self._check_new(name)
        self._lazy[name] = target

    def get(self, name: str) -> Any:
        if name not in self._items:
            if name not in self._lazy:
                raise ConfigError(
                    f"unknown {self.kind} '{name}'; available: {', '.join(self.names())}"
                )
            module, _, attr = self._lazy[name].partition(":")
            self._items[name] = getattr(importlib.import_module(module), attr)
        return self._items[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy
