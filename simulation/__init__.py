"""A literature-grounded simulator of one exercise bout per person, with an exact oracle.

`simulate(n, seed, n_sites)` returns a contract-valid cohort and, beside it, the true
class probabilities of every row; `oracle_probabilities(df)` computes the same truth for
any contract-valid predictor frame. Assumptions and sources: simulation/README.md.

The two functions are loaded on first use, so `import simulation.cli` (and `eih --help`)
stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["oracle_probabilities", "simulate"]

if TYPE_CHECKING:  # pragma: no cover
    from simulation.cohort import simulate
    from simulation.oracle import oracle_probabilities


def __getattr__(name: str):
    if name == "simulate":
        from simulation.cohort import simulate

        return simulate
    if name == "oracle_probabilities":
        from simulation.oracle import oracle_probabilities

        return oracle_probabilities
    raise AttributeError(f"module 'simulation' has no attribute {name!r}")
