"""Errors a user can act on. The command line prints them without a traceback and exits with code 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class MarlbenchError(Exception):
    """Base class: bad input or an impossible request, explained in the message."""


class UnknownNameError(MarlbenchError, KeyError):
    """An algorithm, task, environment or config key that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = ""):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
        msg = f"unknown {kind} {name!r}."
        if close:
            msg += " Did you mean: " + ", ".join(close) + "?"
        elif known:
            msg += " Known: " + ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
        if hint:
            msg += " " + hint
        super().__init__(msg)
        self.kind, self.name, self.close = kind, name, close
        self._init_args = (kind, name, known, hint)

    def __reduce__(self):  # rebuilt from its arguments, so it crosses from a seed worker to the parent intact
        return type(self), self._init_args

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ConfigError(MarlbenchError):
    """A config value or override that does not fit the config's schema."""


class DatasetError(MarlbenchError):
    """A dataset file that is missing, truncated, corrupt, or does not match its task."""


class StorageError(MarlbenchError):
    """A file or directory marlbench must write (the dataset cache, an --out file) that cannot be written."""


class IncompatibleError(MarlbenchError):
    """An algorithm/task pairing the algorithm cannot run (for example continuous-only on discrete actions)."""


class UnavailableError(MarlbenchError):
    """A task that is registered but cannot run on this machine (missing simulator or dataset)."""


class MissingExtraError(MarlbenchError):
    """An optional dependency that is not installed; the message names the extra that provides it."""


def require(module: str, extra: str):
    """Import ``module`` or fail with the ``pip install`` line that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{module!r} is not installed; it comes with the {extra!r} extra: pip install 'marlbench-suite[{extra}]'"
        ) from err


def refuse_one_hot_option(option: str, value: str, default: str, spec) -> None:
    """An option that predicts one-hot actions (``discrete_flow=endpoint``, ``discrete_diffusion=x0``) set on a task
    with continuous actions: say so, and what works there."""
    if value != default and spec.continuous:
        raise IncompatibleError(f"{option}={value} predicts one-hot actions, but task {spec.name!r} has continuous "
                                f"actions: use {option}={default} (the default) there")
