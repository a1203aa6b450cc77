"""Torch-side transition sampling for the training loop (runs every gradient step, so it stays lean)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from marlbench.data.dataset import Dataset
from marlbench.errors import DatasetError


@dataclass
class Batch:
    """One batch of transitions; tensors live on the sampler's device.

    obs/next_obs [B, N, obs_dim]; actions [B, N, act_dim] float or [B, N] int64; rewards [B, N];
    dones [B] float (1 at a terminal: do not bootstrap). state/next_state [B, S] and legals/next_legals
    [B, N, n_actions] bool are None when the dataset has none.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor
    state: torch.Tensor | None = None
    next_state: torch.Tensor | None = None
    legals: torch.Tensor | None = None
    next_legals: torch.Tensor | None = None
    # the dataset's action at the next step (SARSA-style in-sample targets, e.g. ICQ); a placeholder at terminals
    next_actions: torch.Tensor | None = None


def _tensor(x: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    # from_numpy shares memory on CPU (no copy of a possibly large dataset); .to copies once for other devices.
    return None if x is None else torch.from_numpy(x).to(device)


class TransitionSampler:
    """Uniform sampling over ``dataset.td_indices()`` with its own seeded ``torch.Generator``.

    The dataset arrays move to ``device`` once. ``state_dict()``/``load_state_dict()`` capture the generator so a
    resumed run draws exactly the batches an uninterrupted run would have drawn.
    """

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device | str = "cpu", seed: int = 0):
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.obs = _tensor(dataset.obs, self.device)
        self.actions = _tensor(dataset.actions, self.device)
        self.rewards = _tensor(dataset.rewards, self.device)
        self.dones = _tensor(dataset.terminals.astype(np.float32), self.device)
        self.state = _tensor(dataset.state, self.device)
        self.legals = _tensor(dataset.legals, self.device)
        self.td_indices = _tensor(dataset.td_indices(), self.device)
        self.next_index = _tensor(dataset._next_index, self.device)
        if len(self.td_indices) == 0:
            raise DatasetError("dataset has no usable transitions (every episode is one truncated step)")
        # A CPU generator gives the same stream on every device, so results do not depend on the accelerator.
        self.generator = torch.Generator().manual_seed(int(seed))

    def sample(self) -> Batch:
        """Draw one batch of ``batch_size`` transitions."""
        i = torch.randint(len(self.td_indices), (self.batch_size,), generator=self.generator)
        t = self.td_indices[i.to(self.device)]
        nt = self.next_index[t]
        has_state, has_legals = self.state is not None, self.legals is not None
        return Batch(
            obs=self.obs[t], actions=self.actions[t], rewards=self.rewards[t], next_obs=self.obs[nt],
            dones=self.dones[t],
            state=self.state[t] if has_state else None, next_state=self.state[nt] if has_state else None,
            legals=self.legals[t] if has_legals else None, next_legals=self.legals[nt] if has_legals else None,
            next_actions=self.actions[nt],
        )

    def state_dict(self) -> dict:
        """Generator state plus the index count, to refuse resuming on a different dataset."""
        return {"generator": self.generator.get_state(), "n_indices": len(self.td_indices)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the generator so the following batches match the interrupted run."""
        if state["n_indices"] != len(self.td_indices):
            raise DatasetError(f"sampler checkpoint was made on a dataset with {state['n_indices']} usable "
                               f"transitions, this one has {len(self.td_indices)}; resume with the same dataset")
        self.generator.set_state(state["generator"])
