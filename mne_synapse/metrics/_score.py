"""``Score``: a number with what it takes to read it (network, spread, chance)."""

from dataclasses import dataclass


@dataclass
class Score:
    """A score with what it takes to read it.

    Attributes
    ----------
    name : str
        The metric, e.g. ``'FID'``.
    value : float
        The score (``float(score)`` gives it too).
    extractor : str | None
        The network that computed it (features or classifier), if any.
    std : float | None
        Spread over subsets or splits, where the metric has one.
    chance : float | None
        The expected score of a random guess, where one is defined.
    """

    name: str
    value: float
    extractor: str | None = None
    std: float | None = None
    chance: float | None = None

    def __float__(self):
        return float(self.value)

    def __str__(self):
        text = f"{self.name} = {self.value:.4g}"
        if self.std is not None:
            text += f" +/- {self.std:.2g}"
        if self.chance is not None:
            text += f" (chance {self.chance:.4g})"
        if self.extractor is not None:
            text += f" [extractor: {self.extractor}]"
        return text
