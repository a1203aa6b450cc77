"""Task families: one module per benchmark, each defining a ``marlbench.tasks.Family`` that ``marlbench.catalog``
lists."""
