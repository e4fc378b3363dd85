"""An ODEBlock model under torch.nn.parallel.DistributedDataParallel (gloo, 2 CPU processes on
this machine): the all-reduced gradients equal those of one process on the whole batch.

Each rank takes half of the batch and the mean loss over its half; DDP averages the ranks'
gradients, which is the gradient of the mean loss over the whole batch (equal halves). Float64;
the two sides differ only in summation order, ≤ 1e-12 relative.
"""
import os

import numpy as np
import torch

from ocdl.nn import ODEBlock


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), ODEBlock(6, layers=8, T=2.0, field="hamiltonian",
                                                             integrator="verlet"),
                               torch.nn.Linear(6, 4)).double()


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 3, generator=g, dtype=torch.float64), torch.randint(0, 4, (32,), generator=g)


def _worker(rank, world, init_file, out):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(_net())
        X, y = _data()
        Xr, yr = X[rank::world], y[rank::world]
        torch.nn.functional.cross_entropy(ddp(Xr), yr).backward()
        if rank == 0:
            np.savez(out, *[p.grad.numpy() for p in ddp.module.parameters()])
        # both ranks done before either tears gloo down: a rank that exits while its peer is still
        # working can abort the peer's gloo threads (seen once in a fresh clone, with the first
        # rank still compiling its kernels: "terminate called without an active exception", SIGABRT)
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    # skip interpreter finalisation: gloo's worker threads can outlive destroy_process_group and
    # abort the process while Python tears down (pytorch/pytorch#179291); the result is on disk
    os._exit(0)


def test_ddp_gradients_equal_single_process(tmp_path):
    # the ranks run the compiled sweeps (kernels loaded from numba's on-disk cache)
    out = str(tmp_path / "grads.npz")
    torch.multiprocessing.spawn(_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    net = _net()
    X, y = _data()
    torch.nn.functional.cross_entropy(net(X), y).backward()
    got = np.load(out)
    want = [p.grad.numpy() for p in net.parameters()]
    assert len(got.files) == len(want) == 6
    for i, w in enumerate(want):
        g = got[f"arr_{i}"]
        assert np.linalg.norm(g - w) <= 1e-12 * np.linalg.norm(w), i

