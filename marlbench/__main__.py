"""`python -m marlbench ...`, the same as the `marlbench` command."""
import sys

from marlbench.cli import main

sys.exit(main())
