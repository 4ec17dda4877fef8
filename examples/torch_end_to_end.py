"""End to end with PyTorch: archives -> ``zarrmux convert`` -> train -> checkpoint -> resume.

1. make NPZ archives (songs: ``X (rows, 16)`` features, ``Y (rows,)`` labels);
2. convert them with the command line, ``zarrmux convert songs/ -o songs.zarr``;
3. train a tiny per-frame classifier for ``--steps`` steps (epochs of
   ``EPOCH_BATCHES`` batches) from a :class:`zarrmux.torch.WindowDataset`
   through a :class:`zarrmux.torch.WindowLoader` (``--num-workers``
   DataLoader workers), saving two checkpoints: one mid-epoch and one on an
   epoch's last batch; each holds the model, the optimizer and the data
   position (``loader.state_dict()``, which says which epoch it is in: no
   separate epoch counter is saved);
4. from each checkpoint, start again from nothing (new model with other
   weights, new optimizer, new dataset and a loader with *another* number
   of workers), load it, and train the remaining steps, starting at the
   epoch the data state says;
5. check that the resumed runs saw the same batches and reached the same
   losses and weights, bit for bit (the checkpoint on an epoch's last batch
   resumes at the next epoch: no epoch is replayed).

    python examples/torch_end_to_end.py --workdir /tmp/zm-torch --steps 40 --num-workers 2
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from zarrmux.testing import make_npz_archives
from zarrmux.torch import WindowDataset, WindowLoader

N = 16  # rows per window
FEATURES = 16


def convert(songs: Path, corpus: Path) -> None:
    """``zarrmux convert`` on the command line (the console script, else the same entry point)."""
    exe = shutil.which("zarrmux")
    cmd = [exe] if exe else [sys.executable, "-c", "import sys; from zarrmux._cli import main; sys.exit(main())"]
    subprocess.run([*cmd, "convert", str(songs), "-o", str(corpus), "--workers", "1", "-q"], check=True)


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 10))


EPOCH_BATCHES = 6


def make_loader(corpus: Path, num_workers: int) -> WindowLoader:
    ds = WindowDataset(corpus, N, batch_size=16, n_active=4, rate=8, seed=0, epoch_batches=EPOCH_BATCHES)
    return WindowLoader(ds, num_workers=num_workers)


def train(model: nn.Module, opt: torch.optim.Optimizer, loader: WindowLoader, step: int, stop: int,
          ckpts: dict[int, Path] | None = None) -> list[float]:
    """Steps ``step+1 .. stop``, epoch by epoch from the epoch the data position is in; returns the
    losses.  Saves a checkpoint after each step named in ``ckpts``."""
    losses: list[float] = []
    loss_fn = nn.CrossEntropyLoss()
    epoch = loader.state_dict()["epoch"]             # where the data is: 0, or what a checkpoint says
    while step < stop:
        for batch in loader:                         # the rest of the epoch: {"X": (16, N, 16), "Y": (16, N)}
            logits = model(batch["X"])               # (16, N, 10)
            loss = loss_fn(logits.reshape(-1, 10), batch["Y"].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            if ckpts and step in ckpts:
                torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "data": loader.state_dict()}, ckpts[step])
            if step == stop:
                break
        epoch += 1
        assert step == stop or loader.state_dict()["epoch"] == epoch
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("zarrmux-example-torch"))
    ap.add_argument("--steps", type=int, default=40, help="training steps (checkpoints at an epoch end and mid-epoch)")
    ap.add_argument("--num-workers", type=int, default=2, help="DataLoader workers (the resumed runs use others)")
    args = ap.parse_args()
    songs, corpus = args.workdir / "songs", args.workdir / "songs.zarr"
    make_npz_archives(songs, 12, min_rows=300, max_rows=900, features=FEATURES)
    convert(songs, corpus)
    at_epoch_end = EPOCH_BATCHES * max(1, args.steps // (2 * EPOCH_BATCHES))   # an epoch's last batch
    mid_epoch = at_epoch_end + EPOCH_BATCHES // 2 if at_epoch_end + EPOCH_BATCHES // 2 < args.steps else 2
    ckpts = {at_epoch_end: args.workdir / "ckpt-epoch-end.pt", mid_epoch: args.workdir / "ckpt-mid-epoch.pt"}

    model = make_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    full = train(model, opt, make_loader(corpus, args.num_workers), 0, args.steps, ckpts)
    print(f"trained {args.steps} steps with {args.num_workers} workers: loss {full[0]:.3f} -> {full[-1]:.3f}; "
          f"checkpoints at steps {sorted(ckpts)}")

    # --- restart from nothing and resume from each checkpoint, with another number of workers ----------
    for at, path in sorted(ckpts.items()):
        workers = 0 if args.num_workers else 2
        model2 = make_model(1)                       # other initial weights: the checkpoint must restore them
        opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
        loader2 = make_loader(corpus, workers)
        state = torch.load(path, weights_only=True)
        model2.load_state_dict(state["model"])
        opt2.load_state_dict(state["optimizer"])
        loader2.load_state_dict(state["data"])       # any num_workers, any world size
        data = state["data"]
        resumed = train(model2, opt2, loader2, state["step"], args.steps)
        assert resumed == full[at:], (at, resumed, full[at:])
        for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
            assert torch.equal(a, b), name
        print(f"resumed from step {at} (data at epoch {data['epoch']}, position {data['position']}) with "
              f"{workers} workers: the same {len(resumed)} losses and final weights, bit for bit")
    print("OK")


if __name__ == "__main__":
    main()
