from pathlib import Path

from domain.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_documents_every_setting():
    text = README.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`HOTLINE_{name.upper()}`" not in text]
    assert missing == []


def test_readme_opens_with_the_two_commands():
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("./hotline.sh")]
    assert lines[:2] == ["./hotline.sh up", "./hotline.sh test"]
