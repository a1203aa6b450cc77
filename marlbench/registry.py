"""One registry type for algorithms, task families, tasks and behaviour-training environments.

Lookups accept canonical names and aliases; failures raise UnknownNameError listing the closest names.
Third-party packages add algorithms through the entry-point group ``marlbench.algorithms``: each entry point names
a module or class whose import registers it (subclassing ``Algorithm`` is enough). Built-in task families, tasks
and environments are registered by ``marlbench.catalog.load()``; until it runs, those registries are empty, and a
lookup says so.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from marlbench.errors import UnknownNameError

T = TypeVar("T")
ENTRY_POINT_GROUP = "marlbench.algorithms"


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str | Callable[[], str]] = {}
        self._entry_point_group = entry_point_group
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, item: T, aliases: tuple[str, ...] = ()) -> T:
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        for alias in aliases:
            self._aliases[alias] = name
        return item

    def set_alias(self, alias: str, target: str | Callable[[], str]) -> None:
        """Point ``alias`` at a canonical name, or at a function choosing one on every lookup (for example the
        public dataset once it is downloaded, else a generated one). Replaces an earlier target."""
        self._aliases[alias] = target

    def alias_target(self, alias: str) -> str | None:
        """The canonical name ``alias`` resolves to now, None if it is not an alias."""
        target = self._aliases.get(alias)
        return target() if callable(target) else target

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self._entry_point_group):
            ep.load()  # importing registers

    def canonical(self, name: str) -> str:
        self._load_entry_points()
        if name in self._items:
            return name
        if name in self._aliases:
            return self.alias_target(name)
        hint = "" if self._items else f"No {self.kind} is registered yet: call marlbench.catalog.load() first."
        raise UnknownNameError(self.kind, name, list(self._items) + list(self._aliases), hint=hint)

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a in self._aliases if self.alias_target(a) == name)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        try:
            self.canonical(name)
        except UnknownNameError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


ALGORITHMS: Registry = Registry("algorithm", ENTRY_POINT_GROUP)
FAMILIES: Registry = Registry("task family")
TASKS: Registry = Registry("task")
ENVIRONMENTS: Registry = Registry("environment")  # behaviour-training environments (marlbench.behaviour.envs)
