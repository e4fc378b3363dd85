"""A plain PyTorch training loop with ocdl's ConvODEBlock in the middle (docs/torch.md).

    signal (n, 40) → the user's nn.Conv1d encoder (1 → 16 channels) → ocdl.nn.ConvODEBlock
    (8 Euler layers of f = tanh(K ∗ x + b), T = 4; backward = the exact costate sweep)
    → the user's nn.Linear head (640 → 10 classes)

trained on MNIST-1D with torch.optim.AdamW, a cosine learning-rate schedule and mini-batches
from a DataLoader. Then the block and the head are saved as an ocdl model file and
``ocdl predict`` classifies the encoder's outputs with it.

    python examples/torch_block_mnist1d.py                      # full run (40 epochs)
    python examples/torch_block_mnist1d.py --epochs 2 --train-size 800 --out /tmp/quick

Writes ``OUT/torch_block_mnist1d.png`` (loss and held-out accuracy per epoch), ``OUT/block.npz``
(the model file), ``OUT/encoded_test.csv`` (the encoder's outputs on the test set, with labels)
and ``OUT/summary.json``. Needs the ``data`` extra (mnist1d).
"""
import os

# one BLAS / OpenMP thread, set before numpy and torch load their pools: the block's matrices
# are small, and on a shared machine extra threads only contend for the cores (README "Threads")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from ocdl.data.real import mnist1d  # noqa: E402
from ocdl.nn import ConvODEBlock  # noqa: E402


def build(channels=16, length=40, classes=10, layers=8, T=4.0):
    """The user's model: their encoder and head around ocdl's block."""
    encoder = nn.Sequential(nn.Unflatten(1, (1, length)), nn.Conv1d(1, channels, kernel_size=5, padding=2))
    block = ConvODEBlock(channels, length, layers=layers, T=T, field="conv", integrator="euler", kernel=5)
    head = nn.Linear(channels * length, classes)
    return nn.Sequential(encoder, block, nn.Flatten(), head)


def accuracy(model, X, y, batch=500):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(X[i:i + batch]).argmax(dim=1) for i in range(0, len(X), batch)])
    model.train()
    return float((pred == y).float().mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=0.3,
                    help="AdamW's decoupled weight decay (default 0.3: MNIST-1D overfits without it)")
    ap.add_argument("--train-size", type=int, default=None, help="use only the first N training signals")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=".", help="output directory (default: here)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()

    # data: MNIST-1D (4000 training, 1000 test signals of 40 samples), standardised per position
    X, y, X_test, y_test = mnist1d()
    if args.train_size:
        X, y = X[:args.train_size], y[:args.train_size]
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-8
    X, X_test = (torch.tensor((a - mean) / std, dtype=torch.float32) for a in (X, X_test))
    y, y_test = torch.tensor(y), torch.tensor(y_test)
    loader = DataLoader(TensorDataset(X, y), batch_size=args.batch_size, shuffle=True)

    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(args.epochs):
        total = 0.0
        for xb, yb in loader:                      # an ordinary PyTorch step
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()                        # the block's part: the costate sweep
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(xb)
        acc = accuracy(model, X_test, y_test)
        history.append({"epoch": epoch + 1, "loss": total / len(X), "test_accuracy": acc,
                        "seconds": time.perf_counter() - t_start})
        print(f"epoch {epoch + 1:3d}  loss {total / len(X):.4f}  test accuracy {100 * acc:.1f} %  "
              f"{history[-1]['seconds']:.0f} s", flush=True)
    train_seconds = time.perf_counter() - t_start

    # save the block and head as an ocdl model file; `ocdl predict` runs it on the encoder's outputs
    encoder, block, head = model[0], model[1], model[3]
    block.to_model(head=head, path=os.path.join(args.out, "block.npz"), info={"trained_by": "torch"})
    with torch.no_grad():
        Z = encoder(X_test).reshape(len(X_test), -1).double().numpy()
    csv = os.path.join(args.out, "encoded_test.csv")
    header = ",".join([f"x{j + 1}" for j in range(Z.shape[1])] + ["label"])
    np.savetxt(csv, np.column_stack([Z, y_test.numpy()]), delimiter=",", header=header, comments="",
               fmt=["%.17g"] * Z.shape[1] + ["%d"])
    pred_json = os.path.join(args.out, "predict.json")
    subprocess.run([sys.executable, "-m", "ocdl.cli.main", "predict", "--model", os.path.join(args.out, "block.npz"),
                    "--data", csv, "--json", pred_json, "--quiet"], check=True)
    with open(pred_json) as fh:
        predicted = json.load(fh)
    summary = {"test_accuracy": history[-1]["test_accuracy"], "ocdl_predict_accuracy": predicted["accuracy"],
               "train_seconds": train_seconds, "epochs": args.epochs, "history": history}
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(f"test accuracy {100 * summary['test_accuracy']:.1f} % (torch) = "
          f"{100 * predicted['accuracy']:.1f} % (ocdl predict); training {train_seconds:.0f} s")

    from ocdl.plotting import plt, save_figure
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ep = [h["epoch"] for h in history]
    a1.semilogy(ep, [h["loss"] for h in history])
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a2.plot(ep, [100 * h["test_accuracy"] for h in history])
    a2.axhline(95, color="k", ls=":", lw=0.8)
    a2.set_xlabel("epoch")
    a2.set_ylabel("held-out accuracy %")
    fig.suptitle("Conv1d encoder → ocdl ConvODEBlock → linear head, AdamW, MNIST-1D")
    fig.tight_layout()
    save_figure(fig, os.path.join(args.out, "torch_block_mnist1d.png"))
    return summary


if __name__ == "__main__":
    main()
