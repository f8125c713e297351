"""Self-contained HTML reports of a run (report.html) and of a multirun sweep (sweep_report.html).

`python -m stimuli.report RUN_DIR` or `python -m stimuli.report --sweep SWEEP_DIR`.
"""

from stimuli.report.inputs import ReportInputs, inputs_from_run_dir
from stimuli.report.render import load_results, report_figures, write_report
from stimuli.report.sweep import write_sweep_report

__all__ = [
    "ReportInputs",
    "inputs_from_run_dir",
    "load_results",
    "report_figures",
    "write_report",
    "write_sweep_report",
]
