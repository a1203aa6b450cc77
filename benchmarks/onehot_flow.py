"""How fast does a one-hot flow learn a discrete decision? (docs/ALGORITHMS.md, MAC-Flow, ``discrete_flow``)

A toy with no environment: the label is a deterministic 9-way decision ``argmax(W o)`` of a 20-d Gaussian
observation. The same 3x128 MLP (marlbench's flow code) is trained, batch 256, Adam, on fresh samples each step:

- ``ce``: categorical BC (cross-entropy on logits), the reference;
- ``mse``: plain MSE regression of the one-hot vector (no flow), argmax decode;
- ``velocity``: App. E's one-hot flow matching (MSE on x1 - x0), 10 Euler steps from N(0, I), argmax decode;
- ``endpoint``: the same path, x1's logits by cross-entropy, v = (softmax - x_t) / (1 - t);
- ``ddpm-eps``: Diffusion BC's discrete DDPM (App. F.1: K = 200, linear schedule, epsilon-MSE on the noised one-hot
  vector, x_0 clipped to [0, 1]), ancestral sampling, argmax decode;
- ``ddpm-x0``: the same DDPM, x_0's logits by cross-entropy, sampling with the noise that softmax(logits) implies.

It prints the test accuracy (4,096 observations) after 1k, 2k, 4k and 8k steps, and writes JSON. One thread;
about 7 minutes on the 2-core VM. Usage: ``python benchmarks/onehot_flow.py [--lr 3e-4] [--out FILE.json]``.
"""
from __future__ import annotations

import argparse
import json
import platform

import torch
import torch.nn.functional as F

from marlbench.diffusion import DDPM, one_hot_denoising_loss, timestep_embedding
from marlbench.flows import as_velocity, endpoint_loss, euler, flow_matching_loss
from marlbench.nn import mlp

OBS, ACTIONS, HIDDEN, BATCH, CHECKPOINTS = 20, 9, (128, 128, 128), 256, (1000, 2000, 4000, 8000)
KINDS = ("ce", "mse", "velocity", "endpoint", "ddpm-eps", "ddpm-x0")
DDPM_STEPS, STEP_FEATURES = 200, 16  # Diffusion BC's K and time embedding


def accuracy_curve(kind: str, lr: float, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    w = torch.randn(OBS, ACTIONS)
    test_obs = torch.randn(4096, OBS)
    test_labels = (test_obs @ w).argmax(-1)
    flow, diffusion = kind in ("velocity", "endpoint"), kind.startswith("ddpm")
    extra = ACTIONS + 1 if flow else ACTIONS + STEP_FEATURES if diffusion else 0
    net = mlp(OBS + extra, HIDDEN, ACTIONS)
    opt = torch.optim.Adam(net.parameters(), lr)
    ddpm = DDPM(DDPM_STEPS, clip=(0.0, 1.0))
    step_features = timestep_embedding(torch.arange(DDPM_STEPS), STEP_FEATURES)

    def denoiser(obs, x, t):  # the noise (ddpm-eps) or x_0's logits (ddpm-x0) at step index t (tensor or int)
        emb = step_features[t].expand(x.shape[0], STEP_FEATURES)
        return net(torch.cat([obs, x, emb], -1))

    prediction = "x0" if kind == "ddpm-x0" else "epsilon"

    def eps(obs, x, t):
        return ddpm.as_eps(denoiser(obs, x, t), x, t, prediction)

    def field(obs, x, t):
        return net(torch.cat([obs, x, t], -1))

    def velocity(obs, x, t):
        return as_velocity(field(obs, x, t), x, t, kind)

    out = []
    for step in range(1, CHECKPOINTS[-1] + 1):
        obs = torch.randn(BATCH, OBS)
        labels = (obs @ w).argmax(-1)
        if kind == "ce":
            loss = F.cross_entropy(net(obs), labels)
        elif kind == "mse":
            loss = (net(obs) - F.one_hot(labels, ACTIONS).float()).square().mean()
        elif diffusion:
            x0 = F.one_hot(labels, ACTIONS).float()
            t, noise = torch.randint(0, DDPM_STEPS, (BATCH,)), torch.randn(BATCH, ACTIONS)
            loss = one_hot_denoising_loss(denoiser(obs, ddpm.q_sample(x0, t, noise), t), noise, labels, prediction)
        elif kind == "endpoint":
            loss = endpoint_loss(lambda x, t: field(obs, x, t), labels, ACTIONS)
        else:
            loss = flow_matching_loss(lambda x, t: velocity(obs, x, t), F.one_hot(labels, ACTIONS).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in CHECKPOINTS:
            with torch.no_grad():
                if flow:
                    decoded = euler(lambda x, t: velocity(test_obs, x, t), torch.randn(4096, ACTIONS), 10)
                elif diffusion:
                    decoded = ddpm.sample(lambda x, t: eps(test_obs, x, t), torch.randn(4096, ACTIONS))
                else:
                    decoded = net(test_obs)
            out.append(round(float((decoded.argmax(-1) == test_labels).float().mean()), 3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--out", default=None)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "lr": args.lr,
               "steps": list(CHECKPOINTS), "accuracy": {}}
    for kind in args.kinds:
        curve = results["accuracy"][kind] = accuracy_curve(kind, args.lr)
        print(f"{kind:<9} " + "  ".join(f"{s // 1000}k {a:.3f}" for s, a in zip(CHECKPOINTS, curve)), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
