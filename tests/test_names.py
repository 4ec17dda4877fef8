"""Entry names from ordinary file names: ``names='strict' | 'sanitize' | 'relative'`` (``--names``).

Hostile names under every rule: ``..``, absolute paths, odd characters, names
differing by case, names colliding after sanitising.  Whatever the rule, a
stored name passes :func:`check_entry_name` and names never collide silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr

from zarrmux import layout
from zarrmux._cli import main
from zarrmux.conversion import convert
from zarrmux.entry_names import MAX_NAME, NAME_RULES, check_entry_name, sanitize_entry_name
from zarrmux.exceptions import ConversionError
from zarrmux.index_commit import commit_entries
from zarrmux.source_discovery import discover
from zarrmux.verify import info, verify

RULES = list(NAME_RULES)


def archive(path: Path, rows: int = 40, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.savez(path, X=rng.standard_normal((rows, 3)).astype(np.float32), Y=np.arange(rows, dtype=np.int64) + seed)
    return path


def index_of(dest: Path) -> dict[str, str]:
    """``{name: source}`` of a corpus, read straight from the index."""
    idx = layout.read_index(zarr.open_group(str(dest), mode="r"))
    return {str(n): str(s) for n, s in zip(idx["name"], idx["source"])}


def assert_stored_as(dest: Path, expected: dict[str, Path]) -> None:
    """The corpus holds exactly ``{name: source file}``, each name safe, each source recorded, data intact."""
    got = index_of(dest)
    assert got == {n: os.path.abspath(p) for n, p in expected.items()}
    for name in got:
        assert check_entry_name(name) == name and not name.startswith("/") and ".." not in name.split("/")
    root = zarr.open_group(str(dest), mode="r")
    idx = layout.read_index(root)
    for n, s, r in zip(idx["name"], idx["start"], idx["rows"]):
        np.testing.assert_array_equal(root["X"][int(s) : int(s) + int(r)], np.load(expected[str(n)])["X"])


# ------------------------------------------------------------------ the sanitiser


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("Song 1 (live)", "Song_1__live_"),
        ("..", "_."),
        (".", "_"),
        ("", "_"),
        (".hidden", "_hidden"),
        ("-x", "_x"),
        ("/abs/x", "abs/x"),
        ("a/../b", "a/_./b"),
        ("a//b/./c", "a/b/c"),
        ("C:\\evil", "C__evil"),
        ("été", "_t_"),
        ("tab\there\nnl", "tab_here_nl"),
        ("ok-name_1.2", "ok-name_1.2"),  # valid names are unchanged
        ("dir/ok", "dir/ok"),
    ],
)
def test_sanitize_entry_name(raw: str, safe: str) -> None:
    assert sanitize_entry_name(raw) == safe
    assert check_entry_name(safe) == safe
    assert sanitize_entry_name(safe) == safe  # idempotent


def test_sanitize_long_names_stay_valid_and_distinct() -> None:
    a, b = "x" * 400 + "a", "x" * 400 + "b"
    sa, sb = sanitize_entry_name(a), sanitize_entry_name(b)
    assert len(sa) <= MAX_NAME and len(sb) <= MAX_NAME and sa != sb
    assert check_entry_name(sa) == sa and check_entry_name(sb) == sb


# ------------------------------------------------------------------ strict: refused, with the option to use


def test_strict_refuses_odd_names_and_names_the_option(tmp_path: Path) -> None:
    p = archive(tmp_path / "src" / "Song 1 (live).npz")
    with pytest.raises(ConversionError, match=r"has odd characters.*--names sanitize.*names='sanitize'") as exc:
        convert([p], tmp_path / "c.zarr", workers=1)
    assert "Song 1 (live).npz" in str(exc.value)
    assert not (tmp_path / "c.zarr").exists()


def test_strict_refuses_colliding_names_and_names_the_option(tmp_path: Path) -> None:
    a, b = archive(tmp_path / "src" / "a" / "x.npz"), archive(tmp_path / "src" / "b" / "x.npz", seed=1)
    with pytest.raises(ConversionError, match=r"entry name 'x' collides with .*a/x\.npz; use --names relative") as exc:
        convert([tmp_path / "src"], tmp_path / "c.zarr", workers=1)
    assert str(b) in str(exc.value) and str(a) in str(exc.value)
    # the case-only variant says the same
    archive(tmp_path / "case" / "Song.npz")
    archive(tmp_path / "case" / "song.npz", seed=1)
    with pytest.raises(ConversionError, match=r"differs only by case from .*; use --names relative"):
        convert([tmp_path / "case"], tmp_path / "d.zarr", workers=1)
    assert not (tmp_path / "c.zarr").exists() and not (tmp_path / "d.zarr").exists()


# ------------------------------------------------------------------ hostile names under every rule


@pytest.mark.parametrize("rule", RULES)
def test_dotdot_file_name_never_escapes(tmp_path: Path, rule: str) -> None:
    """``...npz`` names an entry ``..`` under the strict rule: refused; the others make it safe."""
    p = archive(tmp_path / "src" / "...npz")
    dest = tmp_path / "c.zarr"
    if rule == "strict":
        with pytest.raises(ConversionError, match=r"would escape the store.*--names sanitize"):
            convert([tmp_path / "src"], dest, workers=1, names=rule)
        assert not dest.exists()
    else:
        convert([tmp_path / "src"], dest, workers=1, names=rule)
        assert_stored_as(dest, {"_.": p})
    assert sorted(os.listdir(tmp_path)) == sorted(["src", *(["c.zarr"] if rule != "strict" else [])])


@pytest.mark.parametrize("rule", RULES)
def test_absolute_names_from_a_grouping_rule(tmp_path: Path, rule: str) -> None:
    """A regex whose ``entry`` takes the whole (absolute) path: never an absolute name."""
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "s_X.npy", np.ones((10, 2), np.float32))
    np.save(src / "s_Y.npy", np.arange(10, dtype=np.int64))
    group = r"^(?P<entry>.+)_(?P<key>[^_/]+)\.npy$"
    dest = tmp_path / "c.zarr"
    if rule == "strict":
        with pytest.raises(ConversionError, match=r"is an absolute path.*--names sanitize"):
            convert([src.resolve()], dest, workers=1, group=group, names=rule)
        return
    convert([src.resolve()], dest, workers=1, group=group, names=rule)
    (name,) = index_of(dest)
    assert not name.startswith("/") and check_entry_name(name) == name
    # sanitize keeps the path as components (made relative); relative: the path below the sources' directory
    assert name == (sanitize_entry_name(str(src.resolve() / "s")) if rule == "sanitize" else "s")
    assert index_of(dest)[name] == f"{src.resolve() / 's_X.npy'};{src.resolve() / 's_Y.npy'}"


@pytest.mark.parametrize("rule", ["sanitize", "relative"])
def test_names_colliding_after_sanitising_are_refused(tmp_path: Path, rule: str) -> None:
    sub = "d/" if rule == "relative" else ""
    archive(tmp_path / "src" / f"{sub}a b.npz")
    archive(tmp_path / "src" / f"{sub}a_b.npz", seed=1)
    with pytest.raises(ConversionError, match=r"entry name '(d/)?a_b' (\(from '(d/)?a b'\) )?collides with"):
        convert([tmp_path / "src"], tmp_path / "c.zarr", workers=1, names=rule)
    shutil.rmtree(tmp_path / "src")
    # and by case, after sanitising
    archive(tmp_path / "src" / f"{sub}A b.npz")
    archive(tmp_path / "src" / f"{sub}a_B.npz", seed=1)
    with pytest.raises(ConversionError, match=r"differs only by case"):
        convert([tmp_path / "src"], tmp_path / "c.zarr", workers=1, names=rule)
    assert not (tmp_path / "c.zarr").exists()


def test_relative_refuses_directories_colliding_after_sanitising(tmp_path: Path) -> None:
    archive(tmp_path / "src" / "a b" / "x.npz")
    archive(tmp_path / "src" / "a_b" / "x.npz", seed=1)
    with pytest.raises(ConversionError, match=r"'a_b/x' collides with .*a b/x\.npz \(named 'a_b/x' from 'a b/x'\); rename one of the files"):
        convert([tmp_path / "src"], tmp_path / "c.zarr", workers=1, names="relative")


@pytest.mark.parametrize("rule", ["sanitize", "relative"])
def test_npy_files_are_never_merged_by_sanitising(tmp_path: Path, rule: str) -> None:
    """``s 1_X.npy`` and ``s?1_Y.npy`` both sanitise to ``s_1``: an error, not one entry of two files."""
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "s 1_X.npy", np.ones((10, 2), np.float32))
    np.save(src / "s?1_Y.npy", np.arange(10, dtype=np.int64))
    with pytest.raises(ConversionError, match=r"'s_1' \(from 's\?1'\) collides with .*s 1_X\.npy"):
        convert([src], tmp_path / "c.zarr", workers=1, names=rule)
    # the same odd name on both files is one entry, as intended
    (src / "s?1_Y.npy").rename(src / "s 1_Y.npy")
    convert([src], tmp_path / "c.zarr", workers=1, names=rule)
    assert list(index_of(tmp_path / "c.zarr")) == ["s_1"]


@pytest.mark.parametrize("rule", RULES)
def test_explicit_names_are_checked_not_rewritten(tmp_path: Path, rule: str) -> None:
    p = archive(tmp_path / "a.npz")
    for bad in ("../x", "/abs/x", "a b"):
        with pytest.raises(ConversionError, match="choose another name"):
            convert([(bad, p)], tmp_path / "c.zarr", workers=1, names=rule)
    convert([("my/name", p)], tmp_path / "c.zarr", workers=1, names=rule)
    assert index_of(tmp_path / "c.zarr") == {"my/name": str(p)}


# ------------------------------------------------------------------ the rules working


def test_sanitize_converts_odd_names_resumes_and_verifies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {
        "Song_1__live_": archive(src / "Song 1 (live).npz"),
        "plain": archive(src / "plain.npz", seed=1),
        "caf__bar": archive(src / "café bar.npz", seed=2),
    }
    dest = tmp_path / "c.zarr"
    report = convert([src], dest, workers=1, names="sanitize")
    assert sorted(report.appended) == sorted(files)
    assert_stored_as(dest, files)
    again = convert([src], dest, workers=1, names="sanitize")  # a rerun finds every entry unchanged
    assert again.entries == 0 and sorted(again.skipped) == sorted(files)
    assert verify(dest, [src], names="sanitize") == []
    # verify needs the same rule, and says so
    with pytest.raises(ConversionError, match=r"Song 1 \(live\)' has odd characters.*--names sanitize"):
        verify(dest, [src])


def test_relative_names_from_nested_directories(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {
        "a/x": archive(src / "a" / "x.npz"),
        "b/x": archive(src / "b" / "x.npz", seed=1),
        "b/deep_er/Song_1": archive(src / "b" / "deep er" / "Song 1.npz", seed=2),
    }
    (src / "c").mkdir()
    np.save(src / "c" / "x_X.npy", np.ones((7, 3), np.float32))
    np.save(src / "c" / "x_Y.npy", np.arange(7, dtype=np.int64))
    dest = tmp_path / "c.zarr"
    convert([src], dest, workers=1, names="relative")
    got = index_of(dest)
    assert got.pop("c/x") == f"{src / 'c' / 'x_X.npy'};{src / 'c' / 'x_Y.npy'}"
    assert got == {n: str(p) for n, p in files.items()}
    # several source arguments: names relative to their common directory
    dest2 = tmp_path / "two.zarr"
    convert([src / "a", src / "b" / "x.npz"], dest2, workers=1, names="relative")
    assert sorted(index_of(dest2)) == ["a/x", "b/x"]
    # a glob: relative to its directory before the first wildcard
    grouped, _ = discover([str(src / "*" / "x.npz")], names="relative")
    assert [n for n, _ in grouped] == ["a/x", "b/x"]
    assert verify(dest, [src], names="relative") == []


def test_verify_with_the_wrong_rule_says_which_entry_holds_the_source(tmp_path: Path) -> None:
    src = tmp_path / "src"
    archive(src / "a" / "x.npz")
    dest = tmp_path / "c.zarr"
    convert([src], dest, workers=1, names="relative")
    (m,) = verify(dest, [src])
    assert m.entry == "x" and "holds this source as entry 'a/x'" in m.problem and "--names" in m.problem


# ------------------------------------------------------------------ the command line


def run(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("zarrmux")
    assert exe, "the zarrmux console script is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_cli_names_option_end_to_end(tmp_path: Path) -> None:
    src = tmp_path / "src"
    a = archive(src / "a" / "Song 1.npz")
    b = archive(src / "b" / "Song 1.npz", seed=1)
    dest = tmp_path / "c.zarr"
    out = run("convert", str(src), "-o", str(dest), "-q", "--workers", "1")
    assert out.returncode == 3 and "--names sanitize" in out.stderr and "Traceback" not in out.stderr
    out = run("convert", str(src), "-o", str(dest), "-q", "--workers", "1", "--names", "sanitize")
    assert out.returncode == 3 and "entry name 'Song_1' (from 'Song 1') collides with" in out.stderr
    assert "--names relative" in out.stderr and not dest.exists()
    out = run("convert", str(src), "-o", str(dest), "-q", "--workers", "1", "--names", "relative")
    assert out.returncode == 0, out.stderr
    out = run("info", str(dest), "--entries", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)["entry_list"]
    assert [(e["name"], e["rows"], e["source"]) for e in listed] == [("a/Song_1", 40, str(a)), ("b/Song_1", 40, str(b))]
    out = run("verify", str(dest), str(src), "--names", "relative")
    assert out.returncode == 0 and out.stdout.strip() == f"{dest}: ok, 2 entries checked (80 rows), 2 source entries compared"


def test_cli_bad_names_value_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(tmp_path), "-o", str(tmp_path / "c.zarr"), "--names", "flat"])
    assert exc.value.code == 2 and "invalid choice: 'flat'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"names='flat' is not one of \('strict', 'sanitize', 'relative'\)"):
        convert([tmp_path], tmp_path / "c.zarr", names="flat")


def test_info_entries_of_a_corpus_without_recorded_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Index rows whose source is empty (written by other tools) list as ``-`` / ``None``."""
    dest = tmp_path / "old.zarr"
    keys = {"X": layout.KeySpec("<f4", (2,), 8)}
    root = layout.create_corpus(str(dest), keys, shard_rows=8, codec="none")
    root["X"].resize((8, 2))
    root["X"][0:5] = np.ones((5, 2), np.float32)
    rec = layout.EntryRecord("e0", 0, 5, checksum=layout.checksum_arrays({"X": np.ones((5, 2), np.float32)}))
    commit_entries(root, [rec], rows_allocated=8)
    assert info(dest, entries=True)["entry_list"] == [{"name": "e0", "rows": 5, "start": 0, "source": None}]
    assert main(["info", str(dest), "--entries"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split() == ["name", "rows", "source"] and lines[-1].split() == ["e0", "5", "-"]


def test_appending_with_another_rule_does_not_store_a_source_twice(tmp_path: Path) -> None:
    src = tmp_path / "src"
    archive(src / "a" / "x.npz")
    dest = tmp_path / "c.zarr"
    convert([src], dest, workers=1)  # strict: entry 'x'
    with pytest.raises(ConversionError, match=r"entry 'a/x': this source is already in .* as entry 'x' .*--names rule"):
        convert([src], dest, workers=1, names="relative")
    assert list(index_of(dest)) == ["x"]
    assert convert([src], dest, workers=1).skipped == ["x"]  # the same rule resumes
