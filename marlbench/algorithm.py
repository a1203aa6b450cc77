"""The base class every algorithm subclasses.

Subclassing registers the algorithm (no edit anywhere else)::

    class MyAlgo(Algorithm, name="myalgo", continuous=True, discrete=False):
        Config = MyAlgoConfig
        def __init__(self, spec, cfg, device): ...
        def update(self, batch): ...        # one gradient step, returns losses as 0-d tensors
        def act(self, obs, legals=None): ... # decentralised: agent i's action depends on obs[:, i] only

An algorithm holds only its math. Sampling, the step loop, evaluation, timing, checkpoints, logging and seeding
belong to ``marlbench.protocol``. Modules and optimizers assigned as attributes are checkpointed automatically.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from marlbench.config import AlgoConfig
from marlbench.data.dataset import Dataset
from marlbench.data.sampler import Batch, TransitionSampler
from marlbench.errors import IncompatibleError
from marlbench.registry import ALGORITHMS
from marlbench.spec import TaskSpec


class Algorithm(nn.Module):
    name: ClassVar[str] = ""
    continuous: ClassVar[bool] = False
    discrete: ClassVar[bool] = False
    Config: ClassVar[type[AlgoConfig]] = AlgoConfig
    summary: ClassVar[str] = ""
    # the paper's Table 3 inference class: "O(1)" (one-step policies) and "O(K)" (K-step samplers, agents batched)
    # per agent; "O(N K)" (one joint chain) and "O(N^2 K)" (a joint chain per agent) in total. `marlbench bench
    # inference` checks the exponent in N of the total FLOPs per joint action against it
    inference_complexity: ClassVar[str] = "O(1)"

    def __init_subclass__(cls, name: str | None = None, continuous: bool = False, discrete: bool = False, **kw):
        super().__init_subclass__(**kw)
        if name is not None:
            cls.name, cls.continuous, cls.discrete = name, continuous, discrete
            cls.summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            ALGORITHMS.register(name, cls)

    def __init__(self, spec: TaskSpec, cfg: AlgoConfig, device: torch.device | str = "cpu"):
        super().__init__()
        self.check_compatible(spec)
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)

    @classmethod
    def check_compatible(cls, spec: TaskSpec) -> None:
        """Refuse impossible pairings with a message that says what would work."""
        if spec.continuous and not cls.continuous:
            raise IncompatibleError(
                f"algorithm {cls.name!r} supports discrete actions only, but task {spec.name!r} has continuous "
                "actions. Choose a continuous-action algorithm (see `marlbench list algos`)."
            )
        if not spec.continuous and not cls.discrete:
            raise IncompatibleError(
                f"algorithm {cls.name!r} supports continuous actions only, but task {spec.name!r} has discrete "
                "actions. Choose a discrete-action algorithm (see `marlbench list algos`)."
            )

    @classmethod
    def make_sampler(cls, dataset: Dataset, cfg: AlgoConfig, device: torch.device | str, seed: int = 0,
                     batch_size: int | None = None) -> Any:
        """The sampler whose ``sample()`` feeds ``update``: one-step transitions (``Batch``) unless the algorithm
        trains on something else (trajectory models return a ``SegmentSampler``). The protocol also builds the
        diagnostics sampler here, with ``batch_size`` set. The sampler needs ``sample()``, ``generator``,
        ``state_dict()`` and ``load_state_dict()``."""
        return TransitionSampler(dataset, batch_size or cfg.batch_size, device, seed)

    def prepare(self, dataset: Dataset) -> None:
        """Called once with the training dataset, before the first update and before a checkpoint is restored
        (e.g. to fit an observation normaliser). Whatever it sets must be a buffer or parameter, so checkpoints
        carry it. The default does nothing."""

    @abstractmethod
    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One gradient step on ``batch``; returns detached 0-d loss tensors (converted only when logged)."""

    @abstractmethod
    def act(self, obs: Tensor, legals: Tensor | None = None) -> Tensor:
        """Joint action for obs [B, N, obs_dim]: [B, N, action_dim] floats or [B, N] ints. Decentralised."""

    def diagnostics(self, batch: Batch) -> dict[str, float]:
        """Mechanism measurements on a batch the update did not see (gradient ratios, Q(pi) - Q(data), ...),
        logged beside the losses. Called by the protocol under its own RNG stream; the default measures nothing."""
        return {}

    def start_episodes(self, count: int) -> None:
        """Called when ``count`` evaluation episodes start together (e.g. to draw per-episode policy noise)."""

    # -- checkpointing: every nn.Module is in state_dict(); optimizers are found among the attributes
    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.optim.Optimizer)}

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "modules": self.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self._optimizers().items()},
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for k, opt in self._optimizers().items():
            opt.load_state_dict(state["optimizers"][k])
