def machine() -> dict:
    """What a benchmark ran on (its results say so beside the numbers)."""
    import os
    import platform

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
