"""Typed configs, profiles and validated overrides.

Resolution order (later wins): the algorithm's Config dataclass defaults (the paper's hyperparameters) ->
the profile's ``algorithm``/``protocol`` sections -> the profile's per-benchmark section -> a named preset
(``--preset``, configs/presets/) -> ``--steps`` and ``--set key=value`` from the command line. Every key is
checked against the dataclass fields; a value is converted to the field's type or rejected with the field named.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any, ClassVar

import yaml

from marlbench.errors import ConfigError, UnknownNameError

PROFILES = ("paper", "quick", "standard")


@dataclass
class AlgoConfig:
    """Hyperparameters shared by every algorithm (paper App. F/G.4)."""

    # `marlbench tune`: the grid over the algorithm's key trade-off coefficient, the same number of values for every
    # algorithm that has one (marlbench/tuning.py); empty: nothing to tune (BC-like algorithms). Several keys are
    # zipped, not crossed: point k sets every key's k-th value (e.g. MABCQ's threshold, used on discrete actions,
    # with phi, used on continuous ones), so the budget stays one value per point.
    tuning_grid: ClassVar[dict[str, tuple]] = {}

    hidden_dims: tuple[int, ...] = (512, 512, 512, 512)
    layer_norm: bool = True
    batch_size: int = 64
    lr: float = 3e-4
    adam_eps: float = 1e-5
    gamma: float = 0.995
    tau: float = 0.005
    # One network for all agents with a one-hot agent id appended (reference codes) vs separate weights per agent.
    share_parameters: bool = True


@dataclass
class ProtocolConfig:
    """The training/evaluation protocol, identical for every algorithm (docs/PROTOCOL.md)."""

    steps: int = 200_000  # gradient steps (paper G.4: 2e5 for MA-MuJoCo and MPE, 1e6 for SMAC)
    eval_every: int = 50_000  # learning-curve evaluations (paper App. E: every 50K steps)
    curve_eval_episodes: int = 10  # episodes per learning-curve point (paper App. E)
    eval_episodes: int = 32  # episodes for the reported score of the FINAL policy
    checkpoint_every: int = 5_000
    log_every: int = 1_000
    latency_calls: int = 1_000  # inference timing: median over this many batch-1 joint actions
    latency_warmup: int = 100
    latency_budget_seconds: float = 10.0  # slow samplers (K-step diffusion) time fewer calls, at least 5
    diagnostic_batch: int = 1024  # transitions per mechanism measurement at every log line (0: none)
    threads: int = 1  # torch threads per seed process (one single-threaded process per core is fastest)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/CLI value to a dataclass field's annotated type, or raise ConfigError naming the key."""
    hint = typing.get_origin(annotation)
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError(value)
            if not isinstance(value, (bool, int)):
                raise ValueError(value)
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer() or isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if annotation is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if annotation is str:
            return str(value)
        if hint is tuple:
            (item_type, _ellipsis) = typing.get_args(annotation)
            if isinstance(value, str):
                value = yaml.safe_load(value if value.startswith("[") else f"[{value}]")
            if isinstance(value, (str, dict)) or not isinstance(value, Iterable):
                raise ValueError(value)
            return tuple(_coerce(v, item_type, key) for v in value)
        if hint is typing.Literal:
            if value not in typing.get_args(annotation):
                raise ValueError(value)
            return value
    except (TypeError, ValueError, yaml.YAMLError):  # YAMLError: a malformed list such as "[256,"
        raise ConfigError(f"config key {key!r} expects {_type_name(annotation)}, got {value!r}") from None
    return value


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    if typing.get_origin(annotation) is tuple:
        item = _type_name(typing.get_args(annotation)[0])
        return f"a list of {item}, e.g. [256,256]"
    return getattr(annotation, "__name__", str(annotation))


# Ranges of the fields every algorithm shares (AlgoConfig) and of the protocol. resolve() checks them for every
# algorithm, besides a Config's own validate(), so a subclass that overrides validate() cannot skip them.
_SHARED_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (lambda v: 0 < v < float("inf"), "a finite number > 0"),
    "adam_eps": (lambda v: 0 < v < float("inf"), "a finite number > 0"),
    "batch_size": (lambda v: v >= 1, "an int >= 1"),
    "gamma": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "tau": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "hidden_dims": (lambda v: len(v) > 0 and all(h >= 1 for h in v),
                    "a non-empty list of positive layer widths, e.g. [256,256]"),
}
_PROTOCOL_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{k: (lambda v: v >= 1, "an int >= 1") for k in (
        "steps", "eval_every", "curve_eval_episodes", "eval_episodes", "checkpoint_every", "log_every", "threads")},
    "latency_calls": (lambda v: v >= 2, "an int >= 2 (the inference-time quartiles need two timings)"),
    "latency_warmup": (lambda v: v >= 0, "an int >= 0"),
    "latency_budget_seconds": (lambda v: v > 0, "a number of seconds > 0"),
    "diagnostic_batch": (lambda v: v >= 0, "an int >= 0 (0: no mechanism measurements)"),
}


def check_ranges(cfg: Any) -> None:
    """Raise ConfigError naming the first shared algorithm or protocol field of ``cfg`` that is out of range."""
    ranges = _PROTOCOL_RANGES if isinstance(cfg, ProtocolConfig) else _SHARED_RANGES
    for key, (ok, expected) in ranges.items():
        if hasattr(cfg, key) and not ok(getattr(cfg, key)):
            raise ConfigError(f"config key {key!r} must be {expected}, got {getattr(cfg, key)!r} "
                              f"(set it with --set {key}=VALUE)")


def apply_overrides(cfg: Any, overrides: dict[str, Any], source: str) -> Any:
    """Return a copy of dataclass ``cfg`` with ``overrides`` applied and type-checked."""
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in fields(cfg)]
    for key in overrides:
        if key not in names:
            raise UnknownNameError(f"config key (from {source})", key, names, hint="Valid keys: " + ", ".join(names))
    return dataclasses.replace(cfg, **{k: _coerce(v, hints[k], k) for k, v in overrides.items()})


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """``["alpha=1.0", "hidden_dims=[64,64]"]`` -> {"alpha": 1.0, "hidden_dims": [64, 64]} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def load_profile(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise UnknownNameError("profile", name, PROFILES)
    text = resources.files("marlbench.configs").joinpath("profiles", f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def preset_names() -> list[str]:
    folder = resources.files("marlbench.configs").joinpath("presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_doc(name: str) -> dict[str, Any]:
    """The YAML document of preset ``name``: ``algorithm``, ``description``, ``set``, ``tasks``."""
    names = preset_names()
    if name not in names:
        raise UnknownNameError("preset", name, names)
    return yaml.safe_load(resources.files("marlbench.configs").joinpath("presets", f"{name}.yaml").read_text())


def load_preset(name: str, algorithm: str, task: str) -> dict[str, Any]:
    """A named published setting (``configs/presets/<name>.yaml``): its ``set`` values plus those of the first
    ``tasks`` pattern (fnmatch on the canonical task name) that matches ``task``. Refuses another algorithm's
    preset and a task the preset does not cover."""
    doc = preset_doc(name)
    if doc["algorithm"] != algorithm:
        raise ConfigError(f"preset {name!r} is for algorithm {doc['algorithm']!r}, not {algorithm!r}")
    values = dict(doc.get("set") or {})
    per_task = doc.get("tasks") or {}
    if per_task:
        match = next((pattern for pattern in per_task if fnmatch.fnmatchcase(task, pattern)), None)
        if match is None:
            raise ConfigError(f"preset {name!r} has no setting for task {task!r}; it covers "
                              + ", ".join(per_task))
        values.update(per_task[match] or {})
    return values


@dataclass(frozen=True)
class ResolvedConfig:
    algorithm: Any
    protocol: ProtocolConfig
    profile: str
    preset: str | None = None
    # where tuned values came from: {"file", "trials", "seeds", "values"} (marlbench/tuning.py); None: defaults
    tuning: dict[str, Any] | None = None
    # an ablation's label (a suite entry's `label:`, `marlbench run --variant`): the run is reported as its own
    # algorithm "<name>:<variant>" (docs/SWEEPS.md "Variants"); None: the algorithm itself
    variant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "profile": self.profile,
            "algorithm": dataclasses.asdict(self.algorithm),
            "protocol": dataclasses.asdict(self.protocol),
        }
        if self.preset:  # only when used, so records without a preset keep their run ids
            out["preset"] = self.preset
        if self.tuning:  # likewise
            out["tuning"] = self.tuning
        if self.variant:  # likewise
            out["variant"] = self.variant
        return out


VARIANT_PATTERN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def check_variant(label: Any, where: str) -> str:
    """A variant label: non-empty lowercase letters, digits and single hyphens (e.g. ``no-q-max``), so that
    ``<algorithm>:<label>`` is a safe column, file and legend name. Returns it; ConfigError naming ``where``."""
    if not isinstance(label, str) or not VARIANT_PATTERN.fullmatch(label):
        raise ConfigError(f"{where}: a variant label is lowercase letters, digits and hyphens (e.g. no-q-max), got "
                          f"{label!r}")
    return label


def variant_name(algorithm: str, variant: str | None) -> str:
    """The name a variant's runs are reported under: ``macflow:no-q-max``; the algorithm itself without one."""
    return f"{algorithm}:{variant}" if variant else algorithm


def resolve(
    algo_cls: type,
    benchmark: str,
    profile: str = "quick",
    steps: int | None = None,
    overrides: dict[str, Any] | None = None,
    preset: str | None = None,
    task: str | None = None,
) -> ResolvedConfig:
    """Layer defaults, profile, per-benchmark profile section, a named preset (for ``task``) and CLI overrides
    into validated configs.

    A ``--set`` key may name an algorithm field or a protocol field (the two sets are disjoint).
    """
    prof = load_profile(profile)
    algo_cfg = algo_cls.Config()
    protocol = ProtocolConfig()
    algo_names = {f.name for f in fields(algo_cfg)}
    layers = [prof, (prof.get("benchmarks") or {}).get(benchmark) or {}]
    for layer in layers:
        # profile algorithm sections apply to every algorithm that has the key; per-algorithm sections to one
        shared = {k: v for k, v in (layer.get("algorithm") or {}).items() if k in algo_names}
        algo_cfg = apply_overrides(algo_cfg, shared, f"profile {profile}")
        own = (layer.get("algorithms") or {}).get(algo_cls.name) or {}
        algo_cfg = apply_overrides(algo_cfg, own, f"profile {profile}")
        protocol = apply_overrides(protocol, layer.get("protocol") or {}, f"profile {profile}")
    if preset:
        algo_cfg = apply_overrides(algo_cfg, load_preset(preset, algo_cls.name, task or ""), f"preset {preset}")
    if steps is not None:
        protocol = apply_overrides(protocol, {"steps": steps}, "--steps")
    overrides = dict(overrides or {})
    proto_names = {f.name for f in fields(protocol)}
    proto_over = {k: overrides.pop(k) for k in list(overrides) if k in proto_names and k not in algo_names}
    if overrides:
        unknown = [k for k in overrides if k not in algo_names]
        if unknown:
            valid = sorted(algo_names) + sorted(proto_names)
            raise UnknownNameError(
                "--set key", unknown[0], valid, hint="Valid keys: " + ", ".join(valid)
            )
    algo_cfg = apply_overrides(algo_cfg, overrides, "--set")
    protocol = apply_overrides(protocol, proto_over, "--set")
    for cfg in (algo_cfg, protocol):
        check_ranges(cfg)  # before validate(): algorithm checks may rely on the shared fields being sane
        validate = getattr(cfg, "validate", None)
        if validate:
            validate()
    return ResolvedConfig(algo_cfg, protocol, profile, preset)
