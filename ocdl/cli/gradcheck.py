"""``ocdl gradcheck`` — costate gradient vs autograd vs continuous adjoint vs finite differences."""
import json

from ocdl.cli import common
from ocdl.cli.train import FIELDS, INTEGRATORS, add_conv_flags, conv_options
from ocdl.progress import log


def register(sub):
    p = common.add_command(
        sub, "gradcheck", "compare the costate gradient with autograd, the continuous adjoint and finite differences",
        ["ocdl gradcheck --field outer --integrator rk4 --layers 20 --json grad.json",
         "ocdl gradcheck --field hamiltonian --integrator verlet"], run)
    p.add_argument("--field", type=common.choice("field", FIELDS), default="outer", help="vector field (default outer)")
    p.add_argument("--integrator", type=common.choice("integrator", INTEGRATORS), default="euler",
                   help="layer map (default euler)")
    p.add_argument("--layers", type=common.positive_int, default=20, help="number of layers N (default 20)")
    p.add_argument("--T", type=common.positive, default=5.0, help="final time (default 5.0)")
    p.add_argument("--width", type=common.positive_int, default=None, help="state dimension (default 3 × 2 = 6)")
    p.add_argument("--points", type=common.positive_int, default=50,
                   help="spiral points per class (default 50); conv fields: that many random signals per class")
    p.add_argument("--length", type=common.positive_int, default=12,
                   help="conv fields: signal length L of the random signals (default 12; with --shape H,W: H·W)")
    add_conv_flags(p)
    common.add_outputs(p, json=True, plot=False, seed=True)
    return p


def conv_signals(X, y, length, seed):
    """Signals for the conv fields: sample i is ``sin(ω_i t + φ_i)`` on L points, ω and φ from
    the spiral point ``X_i`` (so the two spiral classes give two classes of signals)."""
    import numpy as np
    t = np.linspace(0.0, 2.0 * np.pi, length)
    return np.sin((1.5 + X[:, :1]) * t[None, :] + X[:, 1:2]) + 0.1 * np.random.default_rng(seed).standard_normal(
        (len(y), length))


def run(args):
    import numpy as np
    from ocdl.data import spirals
    from ocdl.io import to_jsonable, write_json
    from ocdl.pmp import gradcheck
    from ocdl.solvers import make_model
    X, y = spirals(args.points, seed=args.seed)
    conv = conv_options(args)
    if args.field in ("conv", "hamiltonian-conv"):
        # 1-D signals: two classes of random signals (smooth vs. rough), L positions each
        length = args.length if args.shape is None else int(np.prod(args.shape))
        X = conv_signals(X, y, length, args.seed)
        conv.setdefault("channels", 3)
        conv.setdefault("kernel", 3)
    from ocdl.jobs.train import check_model_size
    check_model_size(args.layers, args.width, X.shape[1], len(X))  # before allocating the model
    model = make_model(X, y, field=args.field, integrator=args.integrator, layers=args.layers, T=args.T,
                       width=args.width, **conv)
    params = model.init(seed=args.seed)
    out = {"field": args.field, "integrator": args.integrator, "layers": model.layers, "T": model.T,
           "width": model.d, "n": int(len(y)), "seed": args.seed}
    out.update(gradcheck(model, params, X, y, seed=args.seed))
    if args.json:
        write_json(args.json, out)
    else:
        print(json.dumps(to_jsonable(out)))
    ce = out["rel_error_costate_vs_autograd"]
    log(f"costate vs autograd {ce:.2e}, "
        f"continuous adjoint vs autograd "
        f"{out['rel_error_continuous_adjoint_vs_autograd']:.2e}, autograd vs finite differences "
        f"{out['rel_error_autograd_vs_finite_difference']:.2e}", args.quiet)
    return 0
