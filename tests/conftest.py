import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ocdl(*args, cwd=None, timeout=600, input=None):
    """Run ``python -m ocdl ARGS`` as a subprocess of this checkout; return CompletedProcess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "2")
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, "-m", "ocdl", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def ocdl_cli():
    return run_ocdl


def run_ocdl_inprocess(*args):
    """Run ``ocdl.cli.main.main(ARGS)`` in this process; return ``(exit code, stdout, stderr)``.
    Much faster than :func:`run_ocdl` (no interpreter start, torch already imported)."""
    import contextlib
    import io

    from ocdl.cli.main import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors and --help
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def ocdl_main():
    return run_ocdl_inprocess


def autograd_reference(model, params, X, y, xi=None):
    """J and its gradient by torch autograd through the generic torch forward ``model.step``
    (+ additive increments ξ_k after each layer): the independent reference of the sweep tests."""
    import torch

    from ocdl.models import to_numpy, to_torch
    from ocdl.models.losses import mean_loss
    from ocdl.models.regularisers import regulariser
    tp = to_torch(params, requires_grad=True)
    x = model.lift(torch.tensor(X, dtype=torch.float64))
    for k in range(model.layers):
        x = model.step(x, tp["K"][k], tp["b"][k])
        if xi is not None:
            x = x + torch.tensor(xi[k], dtype=torch.float64)
    J = mean_loss(model.head(tp, x), y) + regulariser(tp, model.h, model.alpha, model.beta, model.alpha_head)
    J.backward()
    return float(J.detach()), to_numpy({k: v.grad for k, v in tp.items()})


def assert_costate_equals_autograd(model, params, X, y, increments=(None,), rtol=1e-12):
    """``pmp.value_and_grad`` and ``pmp.cost`` against :func:`autograd_reference` for each
    increment array in ``increments`` (None: none): J and the cost-only J to ``rtol`` relative,
    the gradient to ``rtol`` in ``pmp.rel_error``."""
    from ocdl import pmp
    for inc in increments:
        J, g = pmp.value_and_grad(model, params, X, y, increments=inc)
        Ja, ga = autograd_reference(model, params, X, y, inc)
        assert abs(J - Ja) <= rtol * abs(Ja)
        assert pmp.rel_error(g, ga) <= rtol
        Jc = pmp.cost(model, params, X, y, increments=inc)                # cost-only forward
        assert abs(Jc - Ja) <= rtol * abs(Ja)

