"""Whisper with its output layer cut down to the tokens a Mandarin transcript is written with.

On one CPU thread a Whisper-base decoder step is bound by reading its weights, and half of them are the
51,865-row output layer (tied to the token embeddings).  Chinese text is written almost only with pieces of
UTF-8 characters and about 1,400 whole-CJK tokens.  Keeping those tokens, and digits, punctuation, short Latin
tokens (APP, QQ, ID) and every special token, leaves about 7,400 rows.  The kept tokens are scored as before,
but beam search over fewer tokens can settle on another hypothesis now and then.
Measured on 15 synthetic calls (live): CER 0.1971 against 0.1964, in about a quarter less time (docs/speech.md).
Live legs use it; recordings, decoded in Whisper's full 30 s window where the encoder costs more, do not.

``restrict_model`` rewrites a CTranslate2 Whisper directory once.  The rows kept are listed in
``kept_ids.json``, and the engine maps token ids through it (``WhisperEngine``).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import threading
from pathlib import Path

import numpy as np

from asr.audio import AudioError

KEPT_IDS_FILE = "kept_ids.json"
RULE_VERSION = 1  # bump when ``mandarin_token_ids`` changes: models built by an older rule are rebuilt
CT2_BINARY_VERSION = 6  # the model.bin layout this module reads and writes
_lock = threading.Lock()


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (Whisper's vocabulary is written in it), character → byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _is_chinese(ch: str) -> bool:
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFFEF


def mandarin_token_ids(vocabulary: list[str]) -> list[int]:
    """Ids of the tokens a Mandarin transcript can need, in vocabulary order.

    Kept: every special token (from ``<|endoftext|>`` on, contiguous as Whisper expects); pieces of multi-byte
    characters; tokens of Chinese characters, Chinese or ASCII punctuation and digits; ASCII tokens of at most
    2 characters or upper-case ones of at most 4 (APP, QQ, ID)."""
    first_special = vocabulary.index("<|endoftext|>")
    to_byte = _byte_decoder()
    kept = []
    for i, token in enumerate(vocabulary):
        if i >= first_special:
            kept.append(i)
            continue
        raw = bytes(to_byte[c] for c in token if c in to_byte)
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            if all(b >= 0x80 for b in raw):  # a piece of a multi-byte character
                kept.append(i)
            continue
        if (not text or all(_is_chinese(c) or (c.isascii() and not c.isalpha()) for c in text)
                or (text.isascii() and (len(text) <= 2 or (text.isupper() and len(text) <= 4)))):
            kept.append(i)
    return kept


def _read_string(fh) -> str:
    (n,) = struct.unpack("<H", fh.read(2))
    return fh.read(n)[:-1].decode("utf-8")


def _write_string(fh, text: str) -> None:
    data = text.encode("utf-8")
    fh.write(struct.pack("<H", len(data) + 1) + data + b"\0")


def _restrict_weights(src: Path, dst: Path, vocab_size: int, kept: list[int]) -> None:
    """Copy a CTranslate2 ``model.bin``, keeping only the ``kept`` rows of every decoder variable that has one
    row per token (the embeddings, which the output layer shares, and their scales if quantised)."""
    rows = np.asarray(kept)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        (version,) = struct.unpack("<I", fi.read(4))
        if version != CT2_BINARY_VERSION:
            raise AudioError(f"不支持的 CTranslate2 模型格式版本：{version}")
        fo.write(struct.pack("<I", version))
        _write_string(fo, _read_string(fi))
        fo.write(fi.read(4))  # spec revision
        (count,) = struct.unpack("<I", fi.read(4))
        fo.write(struct.pack("<I", count))
        for _ in range(count):
            name = _read_string(fi)
            (rank,) = struct.unpack("<B", fi.read(1))
            shape = list(struct.unpack(f"<{rank}I", fi.read(4 * rank)))
            dtype, (nbytes,) = fi.read(1), struct.unpack("<I", fi.read(4))
            data = fi.read(nbytes)
            if name.startswith("decoder/") and rank >= 1 and shape[0] == vocab_size:
                data = np.frombuffer(data, np.uint8).reshape(vocab_size, -1)[rows].tobytes()
                shape[0] = len(kept)
            _write_string(fo, name)
            fo.write(struct.pack(f"<B{rank}I", rank, *shape) + dtype + struct.pack("<I", len(data)) + data)
        shutil.copyfileobj(fi, fo)  # aliases (the output layer is the embeddings)


def _is_current(target: Path, stamp: dict) -> bool:
    built = target / "built.json"
    return built.is_file() and json.loads(built.read_text()) == stamp


def restrict_model(src: Path, cache_dir: Path) -> Path:
    """``src`` (a CTranslate2 Whisper directory) with the Mandarin output vocabulary, built once into
    ``cache_dir/<name>-mandarin``, and again when ``src`` or the rule changes.  Processes starting together
    may build it at once: each writes its own folder, and the first to rename it into place wins."""
    src = Path(src)
    target = Path(cache_dir) / f"{src.name}-mandarin"
    stamp = {"rule": RULE_VERSION, "source": str(src.resolve()), "source_bytes": (src / "model.bin").stat().st_size}
    with _lock:
        if _is_current(target, stamp):
            return target
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _write_restricted(src, tmp)
            (tmp / "built.json").write_text(json.dumps(stamp))
            if target.exists() and not _is_current(target, stamp):
                shutil.rmtree(target, ignore_errors=True)  # built from another model, or by an older rule
            tmp.rename(target)
        except OSError:
            if not _is_current(target, stamp):  # not another process that finished first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_restricted(src: Path, dst: Path) -> None:
    vocabulary = json.loads((src / "vocabulary.json").read_text(encoding="utf-8"))
    kept = mandarin_token_ids(vocabulary)
    new_id = {old: new for new, old in enumerate(kept)}
    _restrict_weights(src / "model.bin", dst / "model.bin", len(vocabulary), kept)
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    for key in ("lang_ids", "suppress_ids", "suppress_ids_begin"):
        if key in config:
            config[key] = [new_id[i] for i in config[key] if i in new_id]
    (dst / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (dst / "vocabulary.json").write_text(json.dumps([vocabulary[i] for i in kept], ensure_ascii=False),
                                         encoding="utf-8")
    (dst / KEPT_IDS_FILE).write_text(json.dumps(kept), encoding="utf-8")
    for name in ("tokenizer.json", "preprocessor_config.json"):  # text is encoded and decoded in full ids
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
