"""The named settings of ``adaptx reddi``: each builds a :class:`~adaptx.experiments.problems.Problem`
from the command line's constants and says which optimizer defaults the paper uses with it.

The command line reads :data:`SETTINGS` alone (its ``--setting`` names, its help and its figure's
titles), so a new problem is a class with the members of ``Problem`` plus one entry here; neither the
runners nor ``adaptx/cli.py`` change.

Example:
  >>> from adaptx.experiments.settings import SETTINGS, Constants
  >>> SETTINGS["theorem3"].problem(Constants(C=3.0, delta=0.1)).describe()
  'theorem 3: c_t = 3 with probability 0.275 (E[c_t] = 0.1), else -1'
  >>> SETTINGS["theorem1"].defaults("adam", Constants(C=3.0))  # beta1 = 0, beta2 = 1/(1 + C^2), x0 = 1
  (0.0, 0.1, 1.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from adaptx.experiments.optimizers import DEFAULT_B2
from adaptx.experiments.problems import (
    Online,
    Problem,
    Stochastic,
    StochasticTheorem,
    theorem1,
    theorem1_betas,
)


@dataclasses.dataclass(frozen=True)
class Constants:
    """The problems' constants as ``adaptx reddi`` takes them (``--p``, ``--C``, ``--delta``); each
    problem's constructor checks the ones it uses."""

    p: float = 0.01
    C: float = 3.0
    delta: float = 0.1


#: Optimizers whose ``b2`` is not Adam's second-moment decay (AdaX's growth rate; SGD ignores it): a
#: theorem setting leaves their default alone.
_OWN_B2 = ("adax", "sgd")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One named experiment.

    Attributes:
      name: the ``--setting`` name.
      summary: what the gradient is, one line for ``--help``.
      make: the problem from the constants.
      theorem: the paper's theorem setup, whose counterexamples assume Adam with β1 = 0,
        β2 = 1/(1 + C²) and start at x = 1; otherwise β1 = 0.9, the optimizer's default β2 and x = 0.
      heading: the figure's title for a problem (default: its ``describe()``).
    """

    name: str
    summary: str
    make: Callable[[Constants], Problem]
    theorem: bool = False
    heading: Callable[[Problem], str] | None = None

    def problem(self, constants: Constants) -> Problem:
        """The problem of this setting (its constructor raises ``ValueError`` on a bad constant)."""
        return self.make(constants)

    def title(self, problem: Problem) -> str:
        """The figure's title for this setting's ``problem``."""
        return self.heading(problem) if self.heading else problem.describe()

    def defaults(self, optimizer: str, constants: Constants) -> tuple[float, float, float]:
        """``(b1, b2, x0)`` for ``optimizer`` (a name of :mod:`adaptx.experiments.optimizers`) when the
        command line does not give them."""
        if self.theorem:
            b1, b2 = theorem1_betas(constants.C)
            return b1, (DEFAULT_B2[optimizer] if optimizer in _OWN_B2 else b2), 1.0
        return 0.9, DEFAULT_B2[optimizer], 0.0


#: The settings of ``adaptx reddi``, by name.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("online", "gradient 1010 every 101st step, else -10", lambda c: Online()),
        Setting("stochastic", "1010 with probability p, else -10", lambda c: Stochastic(p=c.p)),
        Setting("theorem1", "C every 3rd step, else -1", lambda c: theorem1(c.C), theorem=True,
                heading=lambda prob: f"theorem 1: c_t = {prob.big:g} if t mod 3 = 1 else -1"),
        Setting("theorem3", "C with probability (1+delta)/(C+1), else -1",
                lambda c: StochasticTheorem(C=c.C, delta=c.delta), theorem=True),
    )
}
