"""Generated blocks in text files: the text between two markers replaced, every byte outside
them kept (CRLF line endings too), and a clear error for missing or repeated markers."""

from __future__ import annotations

import pytest

from facedyn.docblocks import BlockError, newline_of, replace_block, split_block

START, END = "<!-- gen -->", "<!-- /gen -->"


def test_split_block_keeps_the_markers_on_the_outside():
    text = f"a\n{START}\nold\n{END}\nb"
    before, inside, after = split_block(text, START, END)
    assert (before, inside, after) == (f"a\n{START}", "\nold\n", f"{END}\nb")
    assert before + inside + after == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no markers\n", r"found 0 and 0"),
        (f"{START}\n", r"found 1 and 0"),
        (f"{END}\n", r"found 0 and 1"),
        (f"{START}\n{END}\n{START}\n{END}\n", r"found 2 and 2"),
        (f"{START}\n{START}\n{END}\n", r"found 2 and 1"),
        (f"{END}\n{START}\n", r"comes before"),
    ],
)
def test_bad_markers_are_an_error_that_names_them_and_the_file(tmp_path, text, message):
    with pytest.raises(BlockError, match=message):
        split_block(text, START, END)
    doc = tmp_path / "doc.md"
    doc.write_bytes(text.encode())
    with pytest.raises(BlockError, match=message) as err:
        replace_block(doc, START, END, "\nnew\n")
    assert str(doc) in str(err.value) and START in str(err.value)
    assert doc.read_bytes() == text.encode()  # nothing written


def test_replace_block_keeps_every_byte_outside(tmp_path):
    before = "# T\n\nunicode ≥ and trailing spaces   \n\n"
    after = "\n\nno newline at the end"
    doc = tmp_path / "doc.md"
    doc.write_bytes(f"{before}{START}\nold\n{END}{after}".encode())
    doc.chmod(0o640)
    assert replace_block(doc, START, END, "\nnew\nlines\n") is True
    assert doc.read_bytes() == f"{before}{START}\nnew\nlines\n{END}{after}".encode()
    assert (doc.stat().st_mode & 0o777) == 0o640  # the file keeps its permissions


def test_crlf_files_keep_crlf_inside_and_out(tmp_path):
    doc = tmp_path / "doc.md"
    original = f"a\r\nb\r\n{START}\r\nold\r\n{END}\r\nc\r\n".encode()
    doc.write_bytes(original)
    assert replace_block(doc, START, END, "\nnew\nlines\n") is True
    assert doc.read_bytes() == f"a\r\nb\r\n{START}\r\nnew\r\nlines\r\n{END}\r\nc\r\n".encode()
    assert replace_block(doc, START, END, "\r\nnew\r\nlines\r\n") is False  # the same bytes
    assert newline_of("a\r\nb") == "\r\n" and newline_of("a\nb") == "\n"


def test_unchanged_block_is_not_rewritten(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_bytes(f"{START}\nsame\n{END}\n".encode())
    stamp = doc.stat().st_mtime_ns
    assert replace_block(doc, START, END, "\nsame\n") is False
    assert doc.stat().st_mtime_ns == stamp
    assert replace_block(doc, START, END, "") is True
    assert doc.read_text() == f"{START}{END}\n"


def test_git_commit_is_the_short_head_of_the_checkout(tmp_path):
    import subprocess

    from facedyn.docblocks import git_commit

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "f").write_text("x")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    assert git_commit(tmp_path) == git("rev-parse", "--short", "HEAD")
    with pytest.raises(subprocess.CalledProcessError):
        git_commit(tmp_path / "..")  # not a checkout
