"""The model zoo: every model is `Model(n_chans, n_outputs, n_times, **hyperparams)` and maps
`(B, n_chans, n_times)` to logits `(B, n_outputs)`, with `embed(x) -> (B, embedding_dim)` the
features the final linear `classifier` sees, so `forward(x) == classifier(embed(x))`.
"""

from stimuli.models import cnn, gru, lstm, mlp, resnet1d, transformer  # noqa: F401  (registers)
from stimuli.models.registry import (
    MODELS,
    build_model,
    build_network,
    list_models,
    load_member,
    member_file,
    model_parameters,
    register,
)

__all__ = [
    "MODELS",
    "build_model",
    "build_network",
    "list_models",
    "load_member",
    "member_file",
    "model_parameters",
    "register",
]
