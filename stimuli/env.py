"""On/off switches read from environment variables (`STIMULI_KEEP_FREED_MEMORY`,
`STIMULI_FILL_UNINITIALIZED`), all spelled the same way."""

from __future__ import annotations

import os

ON = ("1", "true", "yes", "on")
OFF = ("0", "false", "no", "off")


def env_switch(name: str, default: bool) -> bool:
    """The switch `name`: `default` when unset or empty; 1/true/yes/on and 0/false/no/off (any
    case) otherwise. Any other value is a `ValueError` naming the variable."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ON:
        return True
    if value in OFF:
        return False
    raise ValueError(
        f"environment variable {name}={os.environ[name]!r} is not a switch: set it to one of "
        f"{', '.join(ON)} (on) or {', '.join(OFF)} (off), or unset it (default: "
        f"{'on' if default else 'off'})"
    )
