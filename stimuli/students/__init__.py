"""Student classifiers that a third party trains on real windows or on stimuli."""

from stimuli.students.classical import ESTIMATORS, ClassicalStudent, flatten, make_estimator
from stimuli.students.features import BANDS, active_bands, feature_names, window_features
from stimuli.students.neural import NeuralStudent

__all__ = [
    "BANDS",
    "ESTIMATORS",
    "ClassicalStudent",
    "NeuralStudent",
    "active_bands",
    "feature_names",
    "flatten",
    "make_estimator",
    "window_features",
]
