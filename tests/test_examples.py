"""Every example in examples/ runs as ``python examples/<name>.py --workdir ... --steps ...`` and says OK.

The Keras example is in the list only when keras is installed (keras is not a
test dependency); every other example always runs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: example -> extra arguments (small and fast)
RUNS: dict[str, list[str]] = {
    "seed1_npz_pescador1.py": ["--steps", "100"],
    "seed2_sampling_from_disk.py": ["--steps", "100"],
    "torch_end_to_end.py": ["--steps", "16", "--num-workers", "2"],
}
if importlib.util.find_spec("keras") is not None:
    RUNS["keras_fit.py"] = ["--steps", "5"]


def test_every_example_is_listed() -> None:
    """A new example cannot be forgotten: each file is run here (keras_fit.py when keras is installed)."""
    files = {p.name for p in EXAMPLES.glob("*.py")}
    assert files - {"keras_fit.py"} == set(RUNS) - {"keras_fit.py"}
    assert "keras_fit.py" in files


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--workdir", str(tmp_path / "work"), *RUNS[name]],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.rstrip().endswith("OK"), proc.stdout


def test_keras_example_without_keras_says_what_to_install(tmp_path: Path) -> None:
    """Runs everywhere: a ``keras`` package that raises ImportError shadows any real keras."""
    shim = tmp_path / "nokeras" / "keras"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'keras\' (blocked by the test)")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim.parent), env.get("PYTHONPATH")) if p)
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "keras_fit.py"), "--workdir", str(work), "--steps", "1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install keras" in lines[0] and "blocked by the test" in lines[0], lines[0]
    assert proc.stdout == ""
    assert not work.exists()  # it stopped before doing any work
