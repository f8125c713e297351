"""The privacy audit of a release: attacks that must work on real data and fail on the stimuli."""

from stimuli.privacy.attribution import (
    attribution_by_classifier,
    attribution_by_neighbour,
    train_auditor,
)
from stimuli.privacy.audit import audit_privacy, meets_targets
from stimuli.privacy.copy_distance import copy_distance
from stimuli.privacy.linkage import cross_night_linkage
from stimuli.privacy.membership import membership_inference
from stimuli.privacy.real import RealWindows

__all__ = [
    "RealWindows",
    "attribution_by_classifier",
    "attribution_by_neighbour",
    "audit_privacy",
    "copy_distance",
    "cross_night_linkage",
    "meets_targets",
    "membership_inference",
    "train_auditor",
]
