"""Synthesize stimuli: inputs optimised against a frozen teacher (DeepInversion style)."""

from stimuli.augment import random_amplitude_scale, random_time_shift
from stimuli.schema import DEFAULT_WEIGHTS, SynthesisConfig
from stimuli.synthesis import losses
from stimuli.synthesis.hooks import BatchNormStatHook, FeatureHook
from stimuli.synthesis.module import StimulusGenerator
from stimuli.synthesis.synthesize import shard_sizes, synthesize
from stimuli.synthesis.targets import balanced_labels, make_targets

__all__ = [
    "DEFAULT_WEIGHTS",
    "BatchNormStatHook",
    "FeatureHook",
    "StimulusGenerator",
    "SynthesisConfig",
    "balanced_labels",
    "losses",
    "make_targets",
    "random_amplitude_scale",
    "random_time_shift",
    "shard_sizes",
    "synthesize",
]
