"""Feeding a :class:`zarrmux.WindowSampler` into Keras ``Model.fit`` through a generator.

Needs keras (``pip install keras`` and a backend: TensorFlow, JAX or PyTorch).
Without ``KERAS_BACKEND`` set, this example picks TensorFlow if installed,
else JAX, else PyTorch.

    python examples/keras_fit.py --workdir /tmp/zm-keras --steps 20
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
from collections.abc import Iterator
from pathlib import Path

if "KERAS_BACKEND" not in os.environ:
    for _backend, _module in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch")):
        if importlib.util.find_spec(_module) is not None:
            os.environ["KERAS_BACKEND"] = _backend
            break

try:
    import keras  # noqa: E402
except ImportError as _exc:  # keras, or its backend, is missing: say what to install, no traceback
    raise SystemExit(
        f"keras_fit.py needs keras and a backend ({_exc}): pip install keras tensorflow "
        "(or jax, or torch, instead of tensorflow)"
    ) from None
import numpy as np  # noqa: E402

import zarrmux  # noqa: E402
from zarrmux.testing import make_npz_archives  # noqa: E402

N = 16
FEATURES = 16


def keras_batches(sampler: zarrmux.WindowSampler) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless generator of ``(x, y)`` batches: epoch after epoch of the sampler."""
    while True:
        # keras_tuples turns {"X": ..., "Y": ...} into (X, Y)
        yield from zarrmux.keras_tuples(sampler, inputs="X", outputs="Y")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("zarrmux-example-keras"))
    ap.add_argument("--steps", type=int, default=20, help="steps per Keras epoch (2 epochs are run)")
    args = ap.parse_args()
    songs, corpus_path = args.workdir / "songs", args.workdir / "songs.zarr"
    files = make_npz_archives(songs, 12, min_rows=300, max_rows=900, features=FEATURES)
    zarrmux.convert(files, corpus_path, workers=1)  # or: zarrmux convert songs/ -o songs.zarr

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((N, FEATURES)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10),                      # per-frame logits, (batch, N, 10)
    ])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    with zarrmux.WindowSampler(corpus_path, N, batch_size=32, n_active=8, rate=16, seed=0) as sampler:
        history = model.fit(keras_batches(sampler), steps_per_epoch=args.steps, epochs=2, shuffle=False, verbose=0)
        position = sampler.state_dict()              # where the data stream is: save it with the weights
    losses = history.history["loss"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses), losses
    x = np.zeros((1, N, FEATURES), dtype=np.float32)
    assert model.predict(x, verbose=0).shape == (1, N, 10)
    print(f"keras ({keras.backend.backend()}) fit 2 x {args.steps} steps: loss {losses[0]:.3f} -> {losses[1]:.3f}; "
          f"sampler at epoch {position['plan']['epoch']} batch {position['plan']['batch']}")
    print("OK")


if __name__ == "__main__":
    main()
