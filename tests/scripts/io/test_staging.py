"""Output folders complete or absent: staged, published as a whole, never mixed with an earlier run."""

from __future__ import annotations

import os

import pytest

from scripts.io.staging import OutputFolderError, StagedFolder

OWNED = {"a.csv", "b.csv", "figures"}


def _staged(final, token="t1"):
    return StagedFolder(final, "--results", lambda p: p.name in OWNED, token)


def _write(folder, names):
    for name in names:
        (folder / name).write_text(name)


def test_publishing_replaces_the_whole_folder(tmp_path):
    final = tmp_path / "res"
    final.mkdir()
    _write(final, ["a.csv", "b.csv"])
    staged = _staged(final)
    with staged as stage:
        _write(stage, ["a.csv"])
        assert sorted(p.name for p in final.iterdir()) == ["a.csv", "b.csv"]  # untouched until published
        staged.publish()
    assert sorted(p.name for p in final.iterdir()) == ["a.csv"]  # b.csv of the earlier run did not survive
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith((".lock",))) == ["res"]


def test_an_interrupted_run_leaves_the_previous_results_and_its_leftovers_are_removed_next_time(tmp_path):
    final = tmp_path / "res"
    final.mkdir()
    _write(final, ["a.csv", "b.csv"])
    with pytest.raises(KeyboardInterrupt):
        with _staged(final) as stage:
            _write(stage, ["a.csv"])
            raise KeyboardInterrupt
    assert {p.name: p.read_text() for p in final.iterdir()} == {"a.csv": "a.csv", "b.csv": "b.csv"}
    assert not any(p.name.startswith(".res.partial") for p in tmp_path.iterdir())
    # a kill -9 leaves its stage (and, mid-publish, the old folder renamed aside): the next run removes them
    (tmp_path / ".res.partial-999").mkdir()
    (tmp_path / ".res.old-999").mkdir()
    staged = _staged(final, "t2")
    with staged:
        staged.publish()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["res"]


def test_a_folder_with_other_files_or_a_file_in_the_way_is_refused(tmp_path, monkeypatch):
    final = tmp_path / "res"
    final.mkdir()
    _write(final, ["a.csv", "thesis.docx"])
    with pytest.raises(
        OutputFolderError,
        match=r"--results .*res holds files that are not this command's outputs "
        r"\(thesis.docx\).*give an empty or new folder",
    ):
        with _staged(final):
            pass
    assert (final / "thesis.docx").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputFolderError, match="a file of that name is in the way"):
        with _staged(tmp_path / "file"):
            pass
    monkeypatch.chdir(final)
    os.remove("thesis.docx")
    with pytest.raises(OutputFolderError, match="this is the current folder"):
        with _staged(final):
            pass


@pytest.mark.parametrize("code, cause", [(28, "no space left on the disk"), (30, "the file system is read-only")])
def test_a_full_or_read_only_disk_is_a_message_naming_the_folder(tmp_path, code, cause):
    final = tmp_path / "res"
    with pytest.raises(OutputFolderError, match=f"--results {final}: {cause} \\(nothing was written there\\)"):
        with _staged(final) as stage:
            _write(stage, ["a.csv"])
            raise OSError(code, os.strerror(code))
    assert not final.exists() and [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_other_errors_inside_the_stage_keep_their_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        with _staged(tmp_path / "res"):
            open(tmp_path / "missing")
