"""The install's journal: every change can be put back exactly, a run can be rolled back."""

import io
import os

from apache_conf.debian import Changes


def tree(root):
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = os.readlink(path) if path.is_symlink() else path.read_bytes()
        found[str(path.relative_to(root))] = (st.st_mode & 0o7777, content)
    return found


def test_revert_puts_back_files_links_and_absences(tmp_path):
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    (root / "kept.conf").write_text("original\n")
    (root / "kept.conf").chmod(0o600)
    (root / "link").symlink_to("kept.conf")
    before = tree(root)

    changes = Changes(state, io.StringIO())
    assert changes.write(root / "kept.conf", "changed\n", mode=0o640)
    assert changes.write(root / "new.conf", "new\n")
    assert changes.link(root / "link", "new.conf")
    assert changes.remove(root / "kept.conf")
    assert not changes.write(root / "new.conf", "new\n")  # same content: no change
    assert tree(root) != before

    again = Changes(state, io.StringIO())  # a later run reads the journal
    assert again.write(root / "new.conf", "newer\n")
    assert again.revert() == 3
    assert tree(root) == before
    assert not state.exists()


def test_rollback_undoes_this_run_only_and_the_state_dir_keeps_foreign_files(tmp_path):
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    (state / "someone-else").write_text("keep me\n")
    first = Changes(state, io.StringIO())
    first.write(root / "a.conf", "first\n")
    after_first = tree(root)

    second = Changes(state, io.StringIO())
    second.write(root / "a.conf", "second\n")
    second.write(root / "b.conf", "second\n")
    second.rollback()
    assert tree(root) == after_first

    Changes(state, io.StringIO()).revert()
    assert tree(root) == {}
    assert sorted(p.name for p in state.iterdir()) == ["someone-else"]


def test_dry_run_prints_and_touches_nothing(tmp_path):
    out = io.StringIO()
    changes = Changes(tmp_path / "state", out, dry_run=True)
    (tmp_path / "x.conf").write_text("a\nb\n")
    changes.write(tmp_path / "x.conf", "a\nc\n")
    changes.remove(tmp_path / "x.conf")
    assert (tmp_path / "x.conf").read_text() == "a\nb\n"
    assert not (tmp_path / "state").exists()
    text = out.getvalue()
    assert "would write" in text and "    | -b\n    | +c\n" in text
    assert f"would remove {tmp_path}/x.conf" in text
