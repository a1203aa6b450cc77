"""TaskSpec: everything an algorithm may know about a task before seeing data."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

ActionKind = Literal["continuous", "discrete"]


@dataclass(frozen=True)
class TaskSpec:
    """Shapes, limits and scoring of one task.

    ``action_dim`` is the per-agent action vector length for continuous tasks and the number of discrete actions
    for discrete ones. Scores are normalised as ``100 * (S - random_score) / (expert_score - random_score)``.
    """

    name: str
    n_agents: int
    obs_dim: int
    action_kind: ActionKind
    action_dim: int
    episode_limit: int
    state_dim: int | None = None
    action_low: float = -1.0
    action_high: float = 1.0
    return_definition: str = "sum over steps of the mean over agents of the per-agent reward"
    random_score: float | None = None
    expert_score: float | None = None
    normalisation_source: str = ""

    @property
    def continuous(self) -> bool:
        return self.action_kind == "continuous"

    @property
    def joint_action_dim(self) -> int:
        return self.n_agents * self.action_dim

    def normalise(self, score: float) -> float | None:
        if self.random_score is None or self.expert_score is None:
            return None
        return 100.0 * (score - self.random_score) / (self.expert_score - self.random_score)

    def to_dict(self) -> dict:
        return asdict(self)
