"""What a person sees in the terminal: progress bars and the final table, not library noise.

Our own noise is fixed where it arises; this silences what libraries print that says nothing
about a run. Installed by the entry points (`stimuli.run`, `stimuli.evaluate`,
`stimuli.third_party`), not on import, so tests and notebooks see every warning.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

# Library warnings that hold for every run of this project by design.
_WARNINGS = (
    r".*does not have many workers.*",  # in-memory arrays need no loader workers
    r".*GPU available but not used.*",  # trainer.accelerator=cpu is the owner's choice
    r".*isinstance\(treespec, LeafSpec\).*",  # Lightning building a deprecated torch pytree
    r".*You defined a `validation_step` but have no `val_dataloader`.*",  # steps-only fits
    r".*module\(s\) in eval mode.*",  # frozen teachers are in eval mode on purpose
    r".*The given NumPy array is not writable.*",  # read-only memory maps, never written to
)
# Lightning's info lines that advertise products or restate the hardware.
_LOG_LINES = re.compile(
    r"^(💡 Tip|GPU available|TPU available|HPU available|LOCAL_RANK|`Trainer.fit` stopped)"
)


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _LOG_LINES.match(record.getMessage())


def quiet_library_noise() -> None:
    for pattern in _WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in (
        "pytorch_lightning",
        "pytorch_lightning.utilities.rank_zero",
        "lightning.pytorch.utilities.rank_zero",
        "lightning_fabric",
        "lightning_fabric.utilities.rank_zero",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvice) for f in logger.filters):
            logger.addFilter(_DropAdvice())


_LIGHTNING = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")


def quiet_lightning() -> None:
    """`quiet=true`: Lightning's own info lines off (warnings still shown)."""
    for name in _LIGHTNING:
        logging.getLogger(name).setLevel(logging.WARNING)


def terminal_settings() -> dict[str, Any]:
    """What this process silenced, for worker processes (`stimuli.parallel`) to set alike."""
    return {
        "noise": any(isinstance(f, _DropAdvice) for f in logging.getLogger(_LIGHTNING[0]).filters),
        "levels": {name: logging.getLogger(name).level for name in _LIGHTNING},
    }


def apply_terminal_settings(settings: dict[str, Any]) -> None:
    if settings.get("noise"):
        quiet_library_noise()
    for name, level in settings.get("levels", {}).items():
        logging.getLogger(name).setLevel(level)  # a reused worker forgets an earlier job's
