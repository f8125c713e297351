"""stimuli: release what a private sleep study taught a network, as synthetic stimuli."""

from stimuli.paths import register_resolvers

register_resolvers()

__version__ = "0.1.0"
