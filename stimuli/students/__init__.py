"""Student classifiers that a third party trains on real windows or on stimuli.

One interface (`Student`: `fit`, `predict_proba`, `save`, `load`) and one loop to fit and score
them (`student_factories`, `fit_students`, `score_students`).
"""

from stimuli.students.base import Student
from stimuli.students.classical import ESTIMATORS, ClassicalStudent, flatten, make_estimator
from stimuli.students.features import BANDS, active_bands, feature_names, window_features
from stimuli.students.fit import Variants, fit_students, score_students, student_factories
from stimuli.students.neural import NeuralStudent

__all__ = [
    "BANDS",
    "ESTIMATORS",
    "ClassicalStudent",
    "NeuralStudent",
    "Student",
    "Variants",
    "active_bands",
    "feature_names",
    "fit_students",
    "flatten",
    "make_estimator",
    "score_students",
    "student_factories",
    "window_features",
]
