"""How fast does a one-hot flow learn a discrete decision? (docs/ALGORITHMS.md, MAC-Flow, ``discrete_flow``)

A toy with no environment: the label is a deterministic 9-way decision ``argmax(W o)`` of a 20-d Gaussian
observation. The same 3x128 MLP (marlbench's flow code) is trained, batch 256, Adam, on fresh samples each step:

- ``ce``: categorical BC (cross-entropy on logits), the reference;
- ``mse``: plain MSE regression of the one-hot vector (no flow), argmax decode;
- ``velocity``: App. E's one-hot flow matching (MSE on x1 - x0), 10 Euler steps from N(0, I), argmax decode;
- ``endpoint``: the same path, x1's logits by cross-entropy, v = (softmax - x_t) / (1 - t).

It prints the test accuracy (4,096 observations) after 1k, 2k, 4k and 8k steps, and writes JSON. One thread;
about 4 minutes on the 2-core VM. Usage: ``python benchmarks/onehot_flow.py [--lr 3e-4] [--out FILE.json]``.
"""
from __future__ import annotations

import argparse
import json
import platform

import torch
import torch.nn.functional as F

from marlbench.flows import as_velocity, endpoint_loss, euler, flow_matching_loss
from marlbench.nn import mlp

OBS, ACTIONS, HIDDEN, BATCH, CHECKPOINTS = 20, 9, (128, 128, 128), 256, (1000, 2000, 4000, 8000)


def accuracy_curve(kind: str, lr: float, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    w = torch.randn(OBS, ACTIONS)
    test_obs = torch.randn(4096, OBS)
    test_labels = (test_obs @ w).argmax(-1)
    flow = kind in ("velocity", "endpoint")
    net = mlp(OBS + (ACTIONS + 1 if flow else 0), HIDDEN, ACTIONS)
    opt = torch.optim.Adam(net.parameters(), lr)

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
                else:
                    decoded = net(test_obs)
            out.append(round(float((decoded.argmax(-1) == test_labels).float().mean()), 3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "lr": args.lr,
               "steps": list(CHECKPOINTS), "accuracy": {}}
    for kind in ("ce", "mse", "velocity", "endpoint"):
        curve = results["accuracy"][kind] = accuracy_curve(kind, args.lr)
        print(f"{kind:<9} " + "  ".join(f"{s // 1000}k {a:.3f}" for s, a in zip(CHECKPOINTS, curve)), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
