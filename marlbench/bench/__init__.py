"""`marlbench bench ...`: hardware micro-benchmarks, one module per subcommand.

- :mod:`marlbench.bench.train`: ``marlbench bench train``, the speed of one MAC-Flow gradient step, its FLOPs and a
  matmul calibration (benchmarks/README.md says how to read the numbers).
- :mod:`marlbench.bench.batching`: ``marlbench bench batching``, the ceiling of population mode (S seeds as one
  batched model) on this machine, from one step at S times the batch, for S = 1, 2, 4, 8, 16.
- :mod:`marlbench.bench.inference`: ``marlbench bench inference``, ms and FLOPs per joint action of every registered
  algorithm, its ratio to MAC-Flow, and how it scales with the number of agents against its stated complexity.

:func:`main` runs the subcommand ``args.what`` names; each module is imported only when its subcommand runs.
"""
from __future__ import annotations

import argparse
import importlib

SUBCOMMANDS = {"train": "marlbench.bench.train", "batching": "marlbench.bench.batching",
               "inference": "marlbench.bench.inference"}


def main(args: argparse.Namespace) -> int:
    """Entry point of ``marlbench bench WHAT``: the ``main(args)`` of the module of subcommand ``args.what``."""
    return importlib.import_module(SUBCOMMANDS[args.what]).main(args)
