"""The README's quick-start code runs as written (on a small converted corpus)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import zarrmux
from zarrmux.testing import make_npz_archives

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quick_start_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in python_blocks() if "zarrmux.open_corpus(" in b or "zarrmux.WindowSampler(corpus" in b]
    assert len(blocks) == 2, "the quick start's migration and sampler blocks"
    monkeypatch.chdir(tmp_path)
    make_npz_archives(tmp_path / "songs", 4, min_rows=300, max_rows=500, seed=3)
    zarrmux.convert([str(tmp_path / "songs")], "songs.zarr", workers=1, progress=False)
    ns: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), ns)
    assert ns["batch"]["X"].shape == (32, 16, 128)  # type: ignore[index]
    state = ns["state"]
    assert isinstance(state, dict) and state["sampler"].startswith("zarrmux.WindowSampler")


def test_split_block_runs(tmp_path: Path) -> None:
    block = next(b for b in python_blocks() if "corpus.split(" in b)
    zarrmux.convert(make_npz_archives(tmp_path / "songs", 20, min_rows=60, max_rows=90, features=4, seed=5), tmp_path / "c.zarr")
    with zarrmux.open_corpus(tmp_path / "c.zarr") as corpus:
        ns: dict[str, object] = {"zarrmux": zarrmux, "corpus": corpus}
        exec(compile(block.replace("...", "seen = locals().setdefault('seen', []); seen.append(batch)"), "README.md", "exec"), ns)
        sides = ns["sides"]
        assert sorted(sides["train"].names + sides["val"].names) == sorted(corpus.names)  # type: ignore[index]
        # the validation pass visited every window position of the validation entries
        windows = sum(len(b["X"]) for b in ns["seen"])  # type: ignore[attr-defined]
        assert windows == sum(int(r) // 16 for r in sides["val"].rows)  # type: ignore[index]
