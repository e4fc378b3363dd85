"""One-step methods for ``y' = F(t, y)`` and partitioned ``q' = Fq, p' = Fp`` (work in progress)."""
from integrators.tableaux import adjoint_partner, tableau  # noqa: F401
from integrators.errors import IntegratorError, UnknownMethodError  # noqa: F401
