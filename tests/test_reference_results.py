"""The committed reference records still render to the committed table: `results/reference/table.md` is the output
of `marlbench table --results results/reference --allow-missing` (continuous-only algorithms have no cell on the
discrete Spread task, and the trajectory diffusion models have no quick-profile records yet), so a change to the
reader, the statistics or the layout that alters it shows here (regenerate the file when the change is intended)."""
from pathlib import Path

import pytest

from marlbench import cli

RESULTS = Path(__file__).resolve().parent.parent / "results"


@pytest.mark.slow
@pytest.mark.parametrize("root", ["reference", "reference-tuned", "ablations"])
def test_reference_table_regenerates_byte_identical(capsys, root):
    assert cli.main(["table", "--results", str(RESULTS / root), "--allow-missing"]) == 0
    assert capsys.readouterr().out == (RESULTS / root / "table.md").read_text()
