"""The one normaliser of Chinese numbers: digits read one by one, counted numerals, and words for CER."""
from __future__ import annotations

import pytest

from asr.numbers import arabize, join_digit_groups, number_words, numeral_value, spoken_digits


@pytest.mark.parametrize("spoken, value", [
    ("两千", 2000), ("两万三千零五", 23005), ("十五", 15), ("一百一", 110), ("三千五", 3500), ("二十", 20),
])
def test_numeral_values_as_said(spoken, value):
    assert numeral_value(spoken) == value


@pytest.mark.parametrize("text, expected", [
    ("工本费两百元", "工本费200元"),
    ("十五个工作日内办结", "15个工作日内办结"),
    ("一个半月", "1.5个月"),
    ("两个半小时", "2.5个小时"),
    ("半年内有效", "0.5年内有效"),
    ("报销百分之五十", "报销50%"),
    ("三千五百块", "3500块"),
    ("下午三点半", "下午3点半"),
    ("十五号窗口", "15号窗口"),
])
def test_counted_numerals_become_values(text, expected):
    assert arabize(text) == expected


@pytest.mark.parametrize("text", [
    "您看一下", "统一办理", "十分感谢", "一起去", "第一步先挂失",  # numeral characters in words
    "付百元",  # a misheard 四百元: nobody says a bare 百
    "一两个人", "三四天", "五六百元",  # rough counts are not facts
])
def test_words_and_rough_counts_stay(text):
    assert arabize(text) == text


def test_digits_read_one_by_one():
    assert spoken_digits("幺三九七八二六幺四五三") == "13978261453"
    assert spoken_digits("腰五腰七七二九") == "1517729"  # 腰: the ASR's spelling of 幺
    assert spoken_digits("我腰疼，腰腰腰") == "我腰疼，腰腰腰"
    assert spoken_digits("一二线城市") == "一二线城市"
    assert spoken_digits("幺三九", min_digits=5) == "幺三九"
    assert spoken_digits("151 7729 1637", join_separated=True) == "15177291637"
    assert join_digit_groups("电话138-1234-5678") == "电话13812345678"
    for text in ("有效期1.5天", "交123.45元", "1-2线城市", "2023-12-31"):
        assert join_digit_groups(text) == text


def test_words_for_cer():
    assert number_words("20元") == "二十元"
    assert number_words("110") == "一百一十"
    assert number_words("1050") == "一千零五十"
    assert number_words("3.5天") == "三点五天"
    assert number_words("12345") == "一二三四五"
    assert number_words("010") == "零一零"
