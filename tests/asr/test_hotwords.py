import json

from asr.hotwords import Lexicon
from asr.phrase_repair import PhraseRepair, PhraseRepairParams
from asr.pinyin import syllable_similarity
from demo import demo_settings

DEMO_TERMS = demo_settings().lexicon.base_terms  # the demo tenant's base lexicon


def test_near_homophones_of_place_names_are_repaired():
    lex = Lexicon(DEMO_TERMS)
    assert lex.correct("我住在性宾区，想问社保卡") == "我住在兴宾区，想问社保卡"
    assert lex.correct("我是象周县的") == "我是象州县的"
    assert lex.correct("五宣县那边停电了") == "武宣县那边停电了"
    assert lex.correct("金秀要族自治县") == "金秀瑶族自治县"
    assert lex.correct("新城县") == "忻城县"


def test_unrelated_text_is_left_alone():
    lex = Lexicon(DEMO_TERMS)
    for text in ("今天天气很好，谢谢您的来电。", "我想问一下怎么办理", "好的，请您稍等。", "合山市的公积金"):
        assert lex.correct(text) == text


def test_fuzzy_pinyin_rules():
    assert syllable_similarity("zhou", "zhou") == 1.0
    assert syllable_similarity("zhou", "zou") == 0.9
    assert syllable_similarity("xing", "xin") == 0.9
    assert syllable_similarity("bin", "qu") == 0.0


def test_lexicon_from_kb_entries(synthetic_calls):
    entries = [json.loads(line) for line in (synthetic_calls / "kb.jsonl").read_text(encoding="utf-8").splitlines()]
    lex = Lexicon.from_kb(((e["question"], e["answer"]) for e in entries), base=DEMO_TERMS)
    assert "兴宾区" in lex.terms and "社会保险服务中心" in lex.terms
    assert len(lex.terms) > len(DEMO_TERMS) + 20
    assert len(lex.prompt_terms()) == lex.params.prompt_terms
    mined = Lexicon.from_kb((e["question"], e["answer"]) for e in entries)  # a tenant without base terms
    assert set(mined.terms) < set(lex.terms)
    assert "金秀瑶族自治县" not in mined.terms


def test_correction_spans_punctuation_inside_a_name():
    lex = Lexicon(DEMO_TERMS)
    assert lex.correct("您好，来宾政府服务，便名热线。") == "您好，来宾政务服务便民热线。"


def test_short_terms_need_close_syllables_and_a_non_word_span():
    lex = Lexicon(DEMO_TERMS)
    assert lex.correct("您好，来兵12345热线") == "您好，来宾12345热线"
    assert lex.correct("我去政府办事") == "我去政府办事"  # a real word is never bent into a term


def test_exact_short_term_does_not_block_a_longer_repair_that_keeps_it():
    lex = Lexicon(list(DEMO_TERMS) + ["热线", "服务"])
    assert lex.correct("来宾12345政府服务变名热线") == "来宾12345政务服务便民热线"
    # ... but a fuzzy match that would rewrite an exact term's characters is refused
    assert Lexicon(["社保卡", "设备卡号"]).correct("社保卡号") == "社保卡号"


def test_a_common_word_mined_from_the_kb_does_not_block_the_hotline_name():
    # "政府" is an exact term here (mined from knowledge-base text), yet it is a small part of the span
    lex = Lexicon(list(DEMO_TERMS) + ["政府", "服务", "热线"])
    assert lex.correct("您好，来宾要按三次五政府服务变名热线") == "您好，来宾要按三次五政务服务便民热线"
    assert lex.correct("政府热线") == "政府热线"


def test_general_speech_is_not_changed(mandarin_samples):
    texts = (mandarin_samples / "text").read_text(encoding="utf-8").splitlines()
    lex = Lexicon(DEMO_TERMS)
    for line in texts:
        text = line.split(maxsplit=1)[1]
        assert lex.correct(text) == text


KB_ENTRY = ("社保卡遗失了怎么补办？", "社保卡遗失需先挂失再补办。新卡启用后旧卡作废，医保个人账户余额自动转入新卡。"
                                   "对处罚决定有异议的，可以申请行政复议。")


def test_kb_phrases_heard_as_homophones_are_repaired():
    lex = Lexicon.from_kb([KB_ENTRY])
    heard = "新卡启用后就卡作费，以宝个人账户的余额会自动转到新卡上。"
    assert lex.correct(heard) == "新卡启用后旧卡作废，医保个人账户的余额会自动转到新卡上。"
    assert Lexicon.from_kb([KB_ENTRY], phrase_params=None).correct(heard) == heard


def test_a_long_kb_phrase_is_repaired_with_one_syllable_misheard():
    lex = Lexicon.from_kb([("社保卡在哪里补办？", "到社保卡合作银行的即时制卡网点办理。")])
    assert lex.correct("到合作银行的即时资卡网点办理") == "到合作银行的即时制卡网点办理"  # zi for zhi
    assert lex.correct("到合作银行的即时剧卡网点办理") == "到合作银行的即时剧卡网点办理"  # ju sounds nothing like zhi
    assert lex.correct("我们明天去就近的网点") == "我们明天去就近的网点"


def test_real_words_are_not_bent_into_kb_phrases():
    lex = Lexicon.from_kb([KB_ENTRY])
    # "可以一起" sounds like "可异议起" and "意义" like "异议", but jieba's dictionary reads real words there
    for text in ("您补卡的时候可以一起办。", "这件事对我很有意义。", "今天天气很好，谢谢您的来电。"):
        assert lex.correct(text) == text


def test_a_large_kb_keeps_its_most_frequent_phrases():
    texts = [f"第{i}号窗口办理旧卡作废业务" for i in range(50)]
    repair = PhraseRepair(texts, PhraseRepairParams(max_phrases=10))
    assert len(repair) == 10
    assert repair.repair("就卡作费") == "旧卡作废"
