import textwrap

from mailroom.formats.types import SqlType as T
from mailroom.functions import FunctionRegistry, load_entry_points, load_folder


def test_folder_with_one_broken_file(tmp_path):
    (tmp_path / "good.py").write_text(textwrap.dedent("""
        from mailroom.functions import udf

        @udf(name="shout", description="upper-cases", author="ops", version="2")
        def shout(s: str) -> str:
            return s.upper() + "!"
    """))
    (tmp_path / "broken.py").write_text("from mailroom.functions import udf\nraise RuntimeError('boom at import')\n")
    (tmp_path / "syntax.py").write_text("def oops(:\n")
    (tmp_path / "notes.txt").write_text("ignored")
    reg = FunctionRegistry()
    report = load_folder(tmp_path, reg)
    assert report.loaded == ["SHOUT"]
    failed = {f.path.rsplit("/", 1)[-1]: f.error for f in report.failed}
    assert set(failed) == {"broken.py", "syntax.py"}
    assert "RuntimeError: boom at import" in failed["broken.py"]
    assert "SyntaxError" in failed["syntax.py"]
    assert str(tmp_path / "broken.py") in str(report.failed[0]) or str(tmp_path / "broken.py") in str(report.failed[1])
    assert reg.resolve_scalar("SHOUT", [T.STRING]).fn("hi") == "HI!"
    assert reg.describe("shout")["path"].endswith("good.py")


def test_missing_folder_reported(tmp_path):
    report = load_folder(tmp_path / "nope", FunctionRegistry())
    assert not report.ok and "not a directory" in report.failed[0].error


def test_entry_points_group_empty():
    report = load_entry_points("mailroom.functions.test-no-such-group", FunctionRegistry())
    assert report.loaded == [] and report.ok
