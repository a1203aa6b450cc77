"""marlbench: an offline multi-agent RL benchmark suite built around MAC-Flow."""
__version__ = "0.1.0"
