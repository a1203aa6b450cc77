"""Task families: one module per benchmark, each defining a ``marlbench.tasks.Family`` that ``marlbench.catalog``
lists; ``public.py`` adds the published datasets as tasks of those families' environments."""
