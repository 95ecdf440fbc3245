"""`hotline eval copilot --transcripts`: the copilot replayed on what the ASR heard, scored against the labels."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner


@pytest.fixture
def calls_dir(shared_data, tmp_path, settings, monkeypatch):
    """Two shared calls (a social-security question and a 110 emergency) with the shared KB."""
    from domain.settings import get_settings

    src = shared_data / "synthetic_calls"
    out = tmp_path / "calls"
    (out / "dialogues").mkdir(parents=True)
    for cid in ("d001", "d036"):
        shutil.copy(src / "dialogues" / f"{cid}.json", out / "dialogues")
    shutil.copy(src / "kb.jsonl", out)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield out
    get_settings.cache_clear()


def _save_transcripts(calls_dir, folder, garble: str | None = None) -> None:
    """Segments as `hotline eval calls --transcripts` saves them, made from each dialogue's turns; ``garble``
    replaces the caller's words in every caller turn (an ASR that heard nothing useful)."""
    folder.mkdir()
    for f in (calls_dir / "dialogues").glob("*.json"):
        d = json.loads(f.read_text(encoding="utf-8"))
        segments = [{"role": t["speaker"], "start_ms": 3000 * i, "end_ms": 3000 * i + 2500, "confidence": 0.6,
                     "text": garble if garble and t["speaker"] == "caller" else t["text"]}
                    for i, t in enumerate(d["turns"])]
        (folder / f"{d['id']}.json").write_text(json.dumps(segments, ensure_ascii=False), encoding="utf-8")


def _run(calls_dir, *args):
    from serving.cli import app

    out = CliRunner().invoke(app, ["eval", "copilot", "--calls", str(calls_dir), *args])
    return out


def test_replays_the_asr_transcripts_not_the_reference(calls_dir, tmp_path):
    heard, garbled = tmp_path / "heard", tmp_path / "garbled"
    _save_transcripts(calls_dir, heard)
    _save_transcripts(calls_dir, garbled, garble="嗯嗯那个啊")
    as_heard = _run(calls_dir, "--transcripts", str(heard), "--json", str(tmp_path / "a.json"))
    assert as_heard.exit_code == 0, as_heard.output
    report = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert report["transcript"].startswith("ASR transcripts") and report["calls"] == 2
    assert report["police_110"]["tp"] == 1 and report["kb_card_present_at_hang_up"] == 1.0
    curve = report["card_threshold"]["curve"]  # a lower card threshold: more cards, a right one more often
    assert [c["threshold"] for c in curve] == sorted(c["threshold"] for c in curve)
    assert curve[0]["cards_per_call"] >= curve[-1]["cards_per_call"]
    assert curve[0]["kb_card_present_at_hang_up"] >= curve[-1]["kb_card_present_at_hang_up"]
    # turn times come from the segments: the right card first shows at the end of a segment (3i + 2.5 s); the p50
    # of the 2 calls is the mean of two such ends
    assert report["kb_first_right_card_s_p50"] in {1.5 * k + 2.5 for k in range(80)}

    as_garbled = _run(calls_dir, "--transcripts", str(garbled), "--json", str(tmp_path / "g.json"))
    assert as_garbled.exit_code == 0, as_garbled.output
    report = json.loads((tmp_path / "g.json").read_text(encoding="utf-8"))
    assert report["police_110"]["tp"] == 0, "nothing the caller said was heard: no alert can come of it"


def test_a_call_without_a_saved_transcript_is_refused_in_chinese(calls_dir, tmp_path):
    heard = tmp_path / "heard"
    _save_transcripts(calls_dir, heard)
    (heard / "d036.json").unlink()
    out = _run(calls_dir, "--transcripts", str(heard))
    assert out.exit_code != 0
    assert "先运行 hotline eval calls --transcripts" in out.output
