"""End to end with PyTorch: archives -> ``zarrmux convert`` -> train -> checkpoint -> resume.

1. make NPZ archives (songs: ``X (rows, 16)`` features, ``Y (rows,)`` labels);
2. convert them with the command line, ``zarrmux convert songs/ -o songs.zarr``;
3. train a tiny per-frame classifier for ``--steps`` steps from a
   :class:`zarrmux.torch.WindowDataset` through a :class:`zarrmux.torch.WindowLoader`
   (``--num-workers`` DataLoader workers), saving a checkpoint half way:
   model, optimizer and the dataset's position (``loader.state_dict()``);
4. start again from nothing (new model with other weights, new optimizer,
   new dataset and loader), load the checkpoint, train the remaining steps;
5. check that the resumed run saw the same batches and reached the same losses
   and weights, bit for bit.

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


def make_loader(corpus: Path, num_workers: int) -> WindowLoader:
    ds = WindowDataset(corpus, N, batch_size=16, n_active=4, rate=8, seed=0, epoch_batches=12)
    return WindowLoader(ds, num_workers=num_workers)


def train(model: nn.Module, opt: torch.optim.Optimizer, loader: WindowLoader, start: int, stop: int,
          ckpt_step: int | None = None, ckpt_path: Path | None = None) -> list[float]:
    """Steps ``start+1 .. stop``, crossing epochs; returns the losses.  Saves a checkpoint after ``ckpt_step``."""
    losses: list[float] = []
    step = start
    loss_fn = nn.CrossEntropyLoss()
    while step < stop:
        for batch in loader:                            # {"X": (16, N, 16) float32, "Y": (16, N) int64}
            logits = model(batch["X"])                  # (16, N, 10)
            loss = loss_fn(logits.reshape(-1, 10), batch["Y"].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            if step == ckpt_step:
                assert ckpt_path is not None
                torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "data": loader.state_dict()}, ckpt_path)
            if step == stop:
                break
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("zarrmux-example-torch"))
    ap.add_argument("--steps", type=int, default=40, help="training steps (the checkpoint is taken half way)")
    ap.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    args = ap.parse_args()
    songs, corpus, ckpt = args.workdir / "songs", args.workdir / "songs.zarr", args.workdir / "ckpt.pt"
    make_npz_archives(songs, 12, min_rows=300, max_rows=900, features=FEATURES)
    convert(songs, corpus)
    half = args.steps // 2

    model = make_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    full = train(model, opt, make_loader(corpus, args.num_workers), 0, args.steps, half, ckpt)
    print(f"trained {args.steps} steps with {args.num_workers} workers: loss {full[0]:.3f} -> {full[-1]:.3f}; "
          f"checkpoint at step {half}")

    # --- restart from nothing and resume from the checkpoint ---------------------------------
    model2 = make_model(1)                               # other initial weights: the checkpoint must restore them
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    loader2 = make_loader(corpus, args.num_workers)
    state = torch.load(ckpt, weights_only=True)
    model2.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    loader2.load_state_dict(state["data"])
    resumed = train(model2, opt2, loader2, state["step"], args.steps)

    assert resumed == full[half:], (resumed, full[half:])
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), name
    print(f"resumed from step {state['step']}: the same {len(resumed)} losses and final weights, bit for bit")
    print("OK")


if __name__ == "__main__":
    main()
