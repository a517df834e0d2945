"""Public gradient transformations: the blocks optimizers are chained from."""

from adaptx.transforms.adaptive import (
    ScaleByMomentsState,
    scale_by_adam,
    scale_by_adax,
    scale_by_amsgrad,
    scale_by_moments,
)
from adaptx.transforms.learning_rate import ScaleByLearningRateState, scale_by_learning_rate
from adaptx.transforms.weight_decay import WeightDecayState, add_l2, decoupled_weight_decay

__all__ = [
    "ScaleByLearningRateState",
    "ScaleByMomentsState",
    "WeightDecayState",
    "add_l2",
    "decoupled_weight_decay",
    "scale_by_adam",
    "scale_by_adax",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_moments",
]
