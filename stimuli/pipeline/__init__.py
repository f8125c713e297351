"""A job: the stages of `stages=[...]` run by a small runner over the artifact store.

`build_stages` make the mechanism (data, teacher, identity model, stimuli, soft labels),
`assess_stages` judge and ship it (students, evaluation, privacy audit, release); `runner`
resolves what each needs and assembles `results.json`.
"""

from stimuli.pipeline.runner import STAGES, Runner, job_type, open_job, run_pipeline
from stimuli.pipeline.table import format_table

__all__ = ["STAGES", "Runner", "format_table", "job_type", "open_job", "run_pipeline"]
