def machine() -> dict:
    """What a benchmark ran on (its results say so beside the numbers)."""
    import os
    import platform

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def command(module: str) -> str:
    """The command line that ran `python -m module` (what a result file records)."""
    import sys

    return " ".join(["python -m", module, *sys.argv[1:]])
