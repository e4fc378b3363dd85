"""``ocdl forces simulate|learn {drag,position,oscillator,potential}`` — flags of the jobs of
:mod:`ocdl.jobs.forces`: learn forces from equations of motion."""
from ocdl.cli import common

PROBLEMS = ("drag", "position", "oscillator", "potential")

SIMULATE = {
    "drag": ("falling body: v' = g − F(v); writes v0,vT",
             "ocdl forces simulate drag --force '0.01*v**2+0.05*v' --T 1 --g 10 --samples 50 --vmax 40 --out drag.csv"),
    "position": ("x' = v, v' = F(x); writes x0,v0,kind,vT (half positive)",
                 "ocdl forces simulate position --force '2*sin(x)-0.3*(x-5)' --T 2 --target 5 --eps 0.5 "
                 "--samples 2000 --out pos.csv"),
    "oscillator": ("x'' + 2γx' + ω0²x = 0 sampled with noise; writes t,x",
                   "ocdl forces simulate oscillator --gamma 1 --omega0 20 --samples 40 --noise 0.04 --out osc.csv"),
    "potential": ("x'' + 2γx' + ω0² V(x) = 0 from x(0), x'(0); writes t,x",
                  "ocdl forces simulate potential --potential 'x + 0.5*x**3' --gamma 1 --omega0 20 --samples 201 "
                  "--out pot.csv"),
}
LEARN = {
    "drag": ("learn F(v) from (v0, vT) pairs",
             "ocdl forces learn drag --data drag.csv --T 1 --g 10 --solver newton --lambda auto --json drag.json "
             "--profile drag_F.csv --plot drag.png --truth '0.01*v**2+0.05*v'"),
    "position": ("learn F(x) from positive/negative shots",
                 "ocdl forces learn position --data pos.csv --T 2 --target 5 --eps 0.5 --grid-step 0.5 "
                 "--integrator verlet --json pos.json --plot pos.png --truth '2*sin(x)-0.3*(x-5)'"),
    "oscillator": ("learn γ, ω0 (and x(0), x'(0) unless given) from noisy (t, x)",
                   "ocdl forces learn oscillator --data osc.csv --x0 1 --v0 0 --solver newton --json osc.json"),
    "potential": ("learn V(x) in x'' + 2γx' + ω0² V(x) = 0 from one trajectory (t, x)",
                  "ocdl forces learn potential --data pot.csv --gamma 1 --omega0 20 --x0 1 --v0 0 --json pot.json "
                  "--plot pot.png --truth 'x + 0.5*x**3'"),
}


def register(subparsers):
    from ocdl.jobs import forces
    p = subparsers.add_parser("forces", help="learn forces from equations of motion (optimal control)",
                              description="Learn unknown forces from initial/final data through the "
                                          "discretised equation of motion (the force is the control).")
    common.add_global(p)
    sub = p.add_subparsers(dest="forces_command", metavar="{simulate,learn}")
    for word, help, commands, jobs in (("simulate", "synthetic data from solve_ivp (DOP853, rtol 1e-10)", SIMULATE,
                                        forces.SIMULATE),
                                       ("learn", "learn the force from a data CSV", LEARN, forces.LEARN)):
        q = sub.add_parser(word, help=help)
        common.add_global(q)
        problems = q.add_subparsers(dest="problem", metavar="{" + ",".join(PROBLEMS) + "}")
        for name in PROBLEMS:
            r = common.add_command(problems, name, *commands[name], run)
            common.add_job(r, jobs[name])
    return p


def run(args):
    job = common.job_from_args(args)
    job.run()
    for name, success, message in job.outcomes:       # learn: the one warning line when unconverged
        common.not_converged(args, name, success, message)
    return 0
