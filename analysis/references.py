"""Fixed references the analysis compares against: normalisation constants and the paper's Tables 1-2.

Both live as data in ``configs/reference/`` (installed as ``marlbench.configs``):

- ``normalisation.yaml``: random and expert return per paper task, each with its documented source. Tasks outside
  that file (games, landmark covering, ``mpe/spread-scripted``, ...) take the references of their ``TaskSpec`` in
  the task registry. Nothing here ever min-max normalises over the results that happen to be present.
- ``table1.yaml``, ``table2.yaml``: the paper's published cells (mean, 2 std, the paper's own bold/underline), its
  "Average rewards" rows, which metric each section shows and which dataset sources the paper used; per section,
  optional ``notes`` (our remarks on the published values, printed under the section's rows) and ``cited_values``
  (another paper's own numbers for the section's tasks, with the columns they equal).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import marlbench.configs as configs
from marlbench import catalog
from marlbench.errors import MarlbenchError, UnknownNameError
from marlbench.registry import TASKS
from marlbench.tasks import family_of, family_sort_key

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "configs" / "reference"

ALGORITHM_LABELS = {
    "macflow": "MAC-Flow", "bc": "BC", "mabcq": "MABCQ", "macql": "MACQL", "matd3bc": "MATD3BC", "icq": "ICQ",
    "omar": "OMAR", "omiga": "OMIGA", "diffusion-bc": "Diffusion BC", "flow-bc": "Flow BC", "madiff": "MADiff",
    "madiff-c": "MADiff-C", "madiff-d": "MADiff-D", "dof": "DoF", "ma-fql": "MA-FQL",
}
# column order when no paper table fixes it: the paper's Gaussian, diffusion, flow grouping (Table 1: BC, MABCQ,
# MACQL, Diffusion BC, MADiff, DoF, Flow BC, MAC-Flow; Table 2 adds MATD3BC, ICQ, OMAR, OMIGA after the Gaussian
# extensions of single-agent RL), MAC-Flow last; configs/reference/table*.yaml fix the paper tables' own columns
ALGORITHM_ORDER = ("bc", "mabcq", "macql", "matd3bc", "icq", "omar", "omiga", "diffusion-bc", "madiff", "madiff-c",
                   "madiff-d", "dof", "flow-bc", "ma-fql", "macflow")
QUALITIES = ("medium-replay", "medium-expert", "expert", "medium", "random", "good", "poor", "replay", "scripted")


def reference_dir() -> Path:
    """configs/reference of this installation (the source tree or the installed marlbench.configs package)."""
    try:
        path = Path(configs.__file__).resolve().parent / "reference"
        if path.is_dir():
            return path
    except ImportError:  # pragma: no cover - marlbench.configs is always installed
        pass
    return REFERENCE_DIR


@functools.lru_cache(maxsize=None)
def _load(name: str) -> dict:
    path = reference_dir() / name
    if not path.exists():
        raise MarlbenchError(f"reference file {path} is missing from this installation")
    return yaml.safe_load(path.read_text())


def algorithm_label(name: str) -> str:
    """Display name; a variant ``macflow:no-q-max`` (analysis/reader.py) reads "MAC-Flow (no-q-max)"."""
    base, _, variant = name.partition(":")
    label = ALGORITHM_LABELS.get(base, base)
    return f"{label} ({variant})" if variant else label


def benchmark_label(name: str) -> str:
    """The label of a benchmark's task family (``Family.label``); the name itself for an unregistered one."""
    catalog.load()
    family = family_of(name)
    return family.label if family is not None else name


def benchmark_sort_key(name: str) -> tuple[int, str]:
    """Tables and figures order benchmarks by their family's ``order``; unregistered ones last, by name."""
    catalog.load()
    return family_sort_key(name)


def task_action_kind(task: str) -> str | None:
    """``continuous`` or ``discrete`` from the registered task's spec; None if the task or its spec is unknown
    here. Run records carry their own spec (config.json), which the reader prefers."""
    catalog.load()
    spec = TASKS.get(task).spec if task in TASKS else None
    return spec.action_kind if spec is not None else None


def algorithm_sort_key(name: str) -> tuple[int, str]:
    """Paper order; a variant right after its algorithm (``macflow`` < ``macflow:...``), variants by label."""
    base = name.partition(":")[0]
    return (ALGORITHM_ORDER.index(base) if base in ALGORITHM_ORDER else len(ALGORITHM_ORDER), name)


def split_task(task: str) -> tuple[str, str, str]:
    """``<benchmark>/<scenario>-<quality>`` -> (benchmark, scenario, quality); quality may be empty."""
    benchmark, _, rest = task.partition("/")
    if not rest:
        return "", task, ""
    for quality in QUALITIES:
        if rest.endswith("-" + quality):
            return benchmark, rest[: -len(quality) - 1], quality
    scenario, _, quality = rest.rpartition("-")
    return (benchmark, scenario, quality) if scenario else (benchmark, rest, "")


# --------------------------------------------------------------------------------------------- normalisation
@dataclass(frozen=True)
class Reference:
    random: float
    expert: float
    source: str  # where the two numbers come from

    def normalise(self, value: float | None) -> float | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return 100.0 * (value - self.random) / (self.expert - self.random)


def config_references() -> dict[str, Reference]:
    data = _load("normalisation.yaml")
    sources = data.get("sources", {})
    return {task: Reference(float(v["random"]), float(v["expert"]), sources.get(v["source"], v["source"]))
            for task, v in data["tasks"].items()}


def _registry_reference(task: str) -> Reference | None:
    catalog.load()
    if task not in TASKS:
        return None
    spec = TASKS.get(task).spec
    if spec is None or spec.random_score is None or spec.expert_score is None:
        return None
    return Reference(float(spec.random_score), float(spec.expert_score), spec.normalisation_source or "registry")


@functools.lru_cache(maxsize=None)
def reference(task: str) -> Reference | None:
    """Fixed references of ``task``: configs/reference/normalisation.yaml for the paper's tasks (checked against
    the registry by the tests), else the registry's TaskSpec; None if neither has them."""
    refs = config_references()
    if task in refs:
        return refs[task]
    return _registry_reference(task)


def registry_disagreements() -> list[str]:
    """Paper tasks whose registry TaskSpec carries references different from normalisation.yaml."""
    out = []
    for task, ref in config_references().items():
        reg = _registry_reference(task)
        if reg is not None and (not math.isclose(reg.random, ref.random) or not math.isclose(reg.expert, ref.expert)):
            out.append(f"{task}: registry {reg.random}/{reg.expert}, configs {ref.random}/{ref.expert}")
    return out


# --------------------------------------------------------------------------------------------- paper tables
@dataclass(frozen=True)
class PaperCell:
    mean: float
    two_std: float | None
    mark: str | None  # "bold", "underline" or None, as published


@dataclass(frozen=True)
class CitedValues:
    """Another paper's own numbers for some of a section's tasks, kept apart from the transcribed cells."""
    label: str
    source: str  # where we read them
    statistic: str  # what the +- means there
    cells: dict[str, dict[str, PaperCell]] = field(hash=False)  # task -> that paper's method -> cell
    matches: dict[str, str] = field(hash=False)  # our column -> that paper's method whose every cell it equals


@dataclass(frozen=True)
class PaperSection:
    benchmark: str
    label: str
    metric: str  # "return" or "normalised"
    paper_sources: tuple[str, ...]
    tasks: tuple[str, ...]
    cells: dict[str, dict[str, PaperCell]] = field(hash=False)  # task -> algorithm -> cell
    average: dict[str, PaperCell] = field(hash=False)
    notes: tuple[str, ...] = ()  # our remarks on the published values, printed under the section's rows
    cited: tuple[CitedValues, ...] = ()


@dataclass(frozen=True)
class PaperTable:
    name: str
    title: str
    algorithms: tuple[str, ...]
    groups: dict[str, list[str]] = field(hash=False)
    sections: tuple[PaperSection, ...] = ()

    @property
    def tasks(self) -> list[str]:
        return [t for s in self.sections for t in s.tasks]

    def section_of(self, task: str) -> PaperSection | None:
        return next((s for s in self.sections if task in s.tasks), None)


PAPER_TABLES = ("table1", "table2")


def _cell(values: list) -> PaperCell:
    mean = float(values[0])
    two_std = float(values[1]) if len(values) > 1 and not isinstance(values[1], str) else None
    mark = next((v for v in values[1:] if isinstance(v, str)), None)
    return PaperCell(mean, two_std, mark)


def _strings(value, where: str) -> tuple[str, ...]:
    """An optional list of non-empty strings (``notes``), or a MarlbenchError naming where it is."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise MarlbenchError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return tuple(" ".join(v.split()) for v in value)


def _cited(value, where: str, tasks: tuple[str, ...], algorithms: tuple[str, ...]) -> tuple[CitedValues, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MarlbenchError(f"{where}: expected a list of blocks, got {value!r}")
    out = []
    for k, block in enumerate(value):
        at = f"{where}[{k}]"
        if not isinstance(block, dict) or not all(isinstance(block.get(key), str) and block[key].strip()
                                                  for key in ("label", "source", "statistic")):
            raise MarlbenchError(f"{at}: needs non-empty strings label, source and statistic")
        cells = {row["task"]: {m: _cell(v) for m, v in row["values"].items()} for row in block.get("rows", [])}
        if not cells or set(cells) - set(tasks):
            raise MarlbenchError(f"{at}: rows must name tasks of the section, got {sorted(cells)}")
        matches = dict(block.get("matches", {}))
        methods = {m for row in cells.values() for m in row}
        if set(matches) - set(algorithms) or set(matches.values()) - methods:
            raise MarlbenchError(f"{at}: matches must map the table's algorithms to methods of its rows, got {matches}")
        out.append(CitedValues(label=" ".join(block["label"].split()), source=" ".join(block["source"].split()),
                               statistic=" ".join(block["statistic"].split()), cells=cells, matches=matches))
    return tuple(out)


def parse_paper_table(data: dict, where: str = "paper table") -> PaperTable:
    """A paper table from its YAML data (``configs/reference/<name>.yaml``); malformed notes or cited values raise
    a MarlbenchError naming the section."""
    algorithms = tuple(data["algorithms"])
    sections = []
    for s in data["sections"]:
        at = f"{where}, section {s.get('benchmark', '?')}"
        cells = {row["task"]: {a: _cell(v) for a, v in row["values"].items()} for row in s["rows"]}
        tasks = tuple(row["task"] for row in s["rows"])
        sections.append(PaperSection(
            benchmark=s["benchmark"], label=s["label"], metric=s["metric"],
            paper_sources=tuple(s.get("paper_sources", ())), tasks=tasks,
            cells=cells, average={a: _cell(v) for a, v in s.get("average", {}).items()},
            notes=_strings(s.get("notes"), f"{at}: notes"),
            cited=_cited(s.get("cited_values"), f"{at}: cited_values", tasks, algorithms)))
    return PaperTable(name=data["name"], title=data["title"], algorithms=algorithms,
                      groups=dict(data.get("groups", {})), sections=tuple(sections))


@functools.lru_cache(maxsize=None)
def paper_table(name: str) -> PaperTable:
    if name not in PAPER_TABLES:
        raise UnknownNameError("paper table", name, PAPER_TABLES)
    return parse_paper_table(_load(f"{name}.yaml"), f"configs/reference/{name}.yaml")


def paper_section(task: str) -> PaperSection | None:
    for name in PAPER_TABLES:
        section = paper_table(name).section_of(task)
        if section is not None:
            return section
    return None


def paper_cell(task: str, algorithm: str) -> PaperCell | None:
    section = paper_section(task)
    return section.cells.get(task, {}).get(algorithm) if section is not None else None


def paper_sources(task: str) -> tuple[str, ...] | None:
    for name in PAPER_TABLES:
        section = paper_table(name).section_of(task)
        if section is not None:
            return section.paper_sources
    return None


def normalise_source(source: str | None) -> str:
    return (source or "").strip().lower().replace("_", "-")


def same_source(source: str | None, sources: tuple[str, ...]) -> bool:
    """A run's dataset source matches the paper's when it names one of the paper's sources (``og-marl``,
    ``og_marl/smac_v1/3m``, ``omiga``, ``omar``, ...); ``generated``, ``replay history`` and unknown do not."""
    src = normalise_source(source)
    return any(src == s or src.startswith(s + "/") or src.startswith(s + " ") or src.startswith(s + ":")
               for s in sources)
