"""A literature-grounded simulator of one exercise bout per person, with an exact oracle.

`simulate(n, seed, n_sites)` returns a contract-valid cohort and, beside it, the true
class probabilities of every row; `oracle_probabilities(df)` computes the same truth for
any contract-valid predictor frame. Assumptions and sources: simulation/README.md.
"""

from simulation.oracle import oracle_probabilities
from simulation.simulate import simulate

__all__ = ["oracle_probabilities", "simulate"]
