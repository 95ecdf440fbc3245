"""`hotline eval category` refuses a data set it cannot evaluate, in words, instead of reporting 0 items as done."""
from typer.testing import CliRunner


def test_a_file_without_labelled_texts_fails_with_a_reason(tmp_path):
    from serving.cli import app

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"b": 2}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "category", "--data", str(bad)])
    assert result.exit_code != 0 and "不够划分训练集和测试集" in result.output
