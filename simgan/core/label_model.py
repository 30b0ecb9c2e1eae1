"""The base of a task's ``refiner.label_model`` section: augmentation amounts that, when any
is non-zero, make ``train_refiner`` train the refiner's own label model (the task's estimator
on the synthetic set with that augmentation) instead of reusing the synthetic-trained one.
Torch-free, like every params model, so that validating params imports no torch."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from simgan.core.fields import LateKeysParams

EstimatorT = TypeVar("EstimatorT", bound=BaseModel)


class AugmentedLabelModelParams(LateKeysParams):
    """Subclasses declare the amounts as fields named like the estimator's own keys."""

    def estimator(self, base: EstimatorT) -> EstimatorT | None:
        """``base`` with this augmentation, or None when it is all zero (the synthetic-trained
        estimator serves)."""
        amounts = self.model_dump()
        if not any(amounts.values()):
            return None
        return base.model_copy(update=amounts)
