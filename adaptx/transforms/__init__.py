"""Public gradient transformations: the blocks optimizers are chained from."""

from adaptx.transforms.adaptive import (
    scale_by_adam,
    scale_by_adax,
    scale_by_amsgrad,
    scale_by_moments,
)
from adaptx.transforms.classic import (
    scale_by_adagrad,
    scale_by_adamax,
    scale_by_momentum,
    scale_by_nadam,
    scale_by_radam,
    scale_by_rmsprop,
)
from adaptx.transforms.learning_rate import inverse_time_decay, scale_by_learning_rate
from adaptx.transforms.state import MomentsState
from adaptx.transforms.weight_decay import add_decayed_weights, add_l2, decoupled_weight_decay

__all__ = [
    "MomentsState",
    "add_decayed_weights",
    "add_l2",
    "decoupled_weight_decay",
    "inverse_time_decay",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_moments",
    "scale_by_momentum",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rmsprop",
]
