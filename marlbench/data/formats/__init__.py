"""Readers and writers that convert dataset files to and from the in-memory ``Dataset``."""
from marlbench.data.formats.native import load_native, read_native_metadata, save_native

__all__ = ["load_native", "read_native_metadata", "save_native"]
