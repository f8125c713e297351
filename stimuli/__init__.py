"""stimuli: release what a private sleep study taught a network, as synthetic stimuli."""

from stimuli.allocator import keep_freed_memory
from stimuli.paths import register_resolvers

keep_freed_memory()  # before the first large tensor (stimuli/allocator.py says why)
register_resolvers()

__version__ = "0.1.0"
