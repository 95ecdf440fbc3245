from asr.text import (
    clean_hypothesis,
    collapse_repetitions,
    edit_distance,
    is_hallucination,
    normalise_for_cer,
    punctuate,
    to_simplified,
)


def test_traditional_to_simplified_and_punctuation():
    assert to_simplified("請問社會保險卡怎麼補辦") == "请问社会保险卡怎么补办"
    assert punctuate("請問 社保卡怎麼補辦") == "请问，社保卡怎么补办。"
    assert punctuate("你好,是12345吗") == "你好，是12345吗？"
    assert punctuate("好的", final=False) == "好的"
    assert punctuate("你好世界\ufffd﹑") == "你好世界。"


def test_hallucination_phrases_are_dropped():
    for text in ("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", "字幕由Amara.org社区提供", "謝謝觀看"):
        assert is_hallucination(text)
        assert clean_hypothesis(text, 3.0) == ""
    assert not is_hallucination("我想问一下社保卡怎么补办")


def test_repetition_loops_are_cut():
    assert collapse_repetitions("好的好的好的好的好的好的") == "好的好的"
    assert collapse_repetitions("啊啊啊啊啊啊啊啊") == "啊啊啊啊"
    # a loop that writes one character of the repeat otherwise (Whisper given the text before the utterance)
    assert collapse_repetitions("前两天在手机上挂国了G两天在手机上挂国了。") == "前两天在手机上挂国了。"
    assert collapse_repetitions("我住在城北二路十五号我住在城北二路十六号") == "我住在城北二路十五号我住在城北二路十六号"
    looped = "我要投诉" + "这个这个问题" * 20
    assert len(clean_hypothesis(looped, 10.0)) < 30


def test_restarted_sentence_is_dropped():
    assert clean_hypothesis("希望你以后能够做得比我还好！希望你以后能够。", 4.0) == "希望你以后能够做得比我还好！"
    assert clean_hypothesis("好的。好的。", 2.0) == "好的。好的。"  # short confirmations are kept


def test_implausibly_long_output_is_truncated():
    assert len(clean_hypothesis("一二三四五六七八九十" * 5, 1.0)) <= 9


def test_cer_normalisation_reads_numbers_like_speech():
    assert normalise_for_cer("来宾12345热线，8号话务员。") == "来宾一二三四五热线八号话务员"
    assert normalise_for_cer("来宾幺二三四五热线") == "来宾一二三四五热线"
    assert normalise_for_cer("工本费20元，2年") == normalise_for_cer("工本费二十元，两年")
    assert normalise_for_cer("Hello, 世界！") == "HELLO世界"


def test_edit_distance():
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("abc", "axc") == 1
    assert edit_distance("abc", "") == 3
    assert edit_distance("", "ab") == 2


def test_spoken_digit_strings_are_joined_in_transcripts():
    assert punctuate("来宾1-2-3-4-5热线") == "来宾12345热线。"
    assert punctuate("拨打1.2.3.4.5") == "拨打12345。"
    assert punctuate("来宾123-45政务服务") == "来宾12345政务服务。"
    assert punctuate("号码幺三八零零一三八零零零") == "号码13800138000。"
    assert punctuate("电话腰五腰七七二九一六三七") == "电话15177291637。"
    assert normalise_for_cer(punctuate("1-2-3-4-5")) == normalise_for_cer("12345")
