"""Import everything that registers algorithms and tasks (built-ins; plugins come through entry points)."""
import marlbench.algorithms.macflow  # noqa: F401
import marlbench.baselines.bc  # noqa: F401
import marlbench.baselines.icq  # noqa: F401
import marlbench.baselines.mabcq  # noqa: F401
import marlbench.baselines.macql  # noqa: F401
import marlbench.baselines.matd3bc  # noqa: F401
import marlbench.baselines.omar  # noqa: F401
import marlbench.baselines.omiga  # noqa: F401
import marlbench.tasks  # noqa: F401
import marlbench.data.public  # noqa: F401,E402  (after the tasks: public datasets bind to their environments)
