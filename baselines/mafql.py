"""MA-FQL: the multi-agent extension of flow Q-learning (FQL, Park et al., 2025) that the MAC-Flow paper compares
against in Fig. 10 (App. H.1, "MAC-Flow vs. MA-FQL"), where it is described as "a fully decentralized version of
MAC-Flow, especially in decentralized Q without IGM and flow decentralized policy".

It is exactly a configuration of MAC-Flow (algorithms/macflow.py); no extra math. This class fixes three options:

- ``flow="individual"``: Stage I is a per-agent flow v_phi(t, o_i, x_i) (FQL's BC flow, one per agent) instead of
  the joint flow over the joint action of Eq. (6). Agent i's flow sample depends on o_i and z_i only.
- ``td_target="individual"``: agent i's critic regresses its OWN TD target r_i + gamma (1 - d) Qbar_i(o'_i, a'_i),
  a'_i from agent i's flow (or one-step policy) at o'_i: no mixer and no team reward in the target, so nothing
  couples the agents' critics (with ``"mixed"`` every Q_i would regress the mean team target through Q_tot).
- ``critic="igm"``: individual critics Q_i(o_i, a_i) (``"centralised"`` is one Q over the joint observation and
  action). Under ``td_target="individual"`` these are plain per-agent critics; IGM only enters through a mixer.

Stage II is unchanged and already per agent: each one-step policy mu_i(o_i, z_i) is distilled toward agent i's
own flow sample with the same z_i, and the Q term -mean_i Q_i(o_i, mu_i(o_i, z_i)) is linear in the Q_i, so agent
i's policy receives Q gradient from its own Q_i only. The summed loss is therefore the sum of N per-agent FQL
losses (Q terms scaled by 1/N; tests/test_mafql.py checks each of these properties).

Every other hyperparameter keeps MAC-Flow's default, so Fig. 10 compares decentralisation alone. FQL's own choices
differ in three places and are options here: ``next_actions=onestep`` (FQL bootstraps with the one-step policy's
action), ``distill_reduction=mean`` (FQL averages the distillation over action dimensions; with it the summed loss
is (1/N) sum_i of the per-agent FQL losses exactly) and ``share_parameters=false`` (separate weights per agent, N
independent learners; the default shares one network with a one-hot agent id, which is still per agent in what
each network sees). ``validate()`` refuses the settings that would couple the agents (joint flow, mixed TD target,
centralised critic): those are MAC-Flow, not MA-FQL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from marlbench.algorithms.macflow import MACFlow, MACFlowConfig
from marlbench.errors import ConfigError

# option -> the only value MA-FQL accepts, and why
FIXED = {
    "flow": ("individual", "MA-FQL learns one flow per agent (a joint flow is MAC-Flow's Stage I, Eq. 6)"),
    "td_target": ("individual", "each MA-FQL critic learns from its own reward with its own TD target (a mixed "
                                "target couples the agents through Q_tot)"),
    "critic": ("igm", "MA-FQL has per-agent critics Q_i(o_i, a_i) (a centralised Q sees every agent)"),
}


@dataclass
class MAFQLConfig(MACFlowConfig):
    flow: Literal["joint", "individual"] = "individual"
    td_target: Literal["mixed", "individual"] = "individual"
    critic: Literal["igm", "centralised"] = "igm"

    def validate(self) -> None:
        for key, (value, why) in FIXED.items():
            if getattr(self, key) != value:
                raise ConfigError(f"ma-fql is fully decentralised: it needs {key}={value}, got "
                                  f"{key}={getattr(self, key)} ({why}; use --algo macflow for that setting)")
        super().validate()


class MAFQL(MACFlow, name="ma-fql", continuous=True, discrete=True):
    """MA-FQL: fully decentralised FQL (per-agent flows, per-agent critics with own TD targets, no mixer; Fig. 10)."""

    Config = MAFQLConfig
