"""Chinese numbers as written and as spoken: the project's one normaliser.

- Digits read one by one (phone, hotline, ID and room numbers): ``幺三九…``, ``腰五腰…`` (the ASR's usual
  spelling of 幺), ``1-2-3-4-5`` → Arabic digits (:func:`spoken_digits`, :func:`join_digit_groups`).
- Numerals that count something (两百元, 十五个工作日, 一个半月, 三千五百块, 百分之五十, 半年) → Arabic values
  (:func:`arabize`, :func:`numeral_value`).
- Arabic numbers → Chinese words, the form CER compares (:func:`number_words`).

Values come from ``cn2an``.  Which spans are numbers is decided here: a free-text numeral converter also
rewrites 一下, 统一 and 十分, so a numeral is only read as a number before a unit it counts.
"""
from __future__ import annotations

import re

import cn2an

DIGIT_OF = {"零": "0", "〇": "0", "幺": "1", "腰": "1", "一": "1", "二": "2", "两": "2", "三": "3", "四": "4",
            "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
NUMERAL_CHARS = frozenset("0123456789零〇幺一二两三四五六七八九十百千万")

# A run of three or more digit readings is a number read digit by digit; a run of 腰 alone is the word 腰 (waist).
_DIGIT_RUN = re.compile("[零〇幺腰一二两三四五六七八九]{3,}")
# Digits read one by one come out as "1-2-3-4-5", "1.2.3.4.5" or "123-45": five or more digits in groups
# joined by two or more separators, or by one hyphen, are one spoken number (hotline, phone, ID); dates stay.
_SPLIT_DIGITS = re.compile(
    r"(?<![\d.-])(?!\d{4}-\d{1,2}-\d{1,2}(?!\d))\d{1,4}(?:[-.·]\d{1,4}){2,}(?![\d.-])|(?<![\d.-])\d{1,4}-\d{1,4}(?![\d.-])"
)
_DIGIT_SEP = re.compile(r"(?<=\d)[-\s](?=\d)")

# units a counted numeral stands before (个 may come between: 十五个工作日)
UNITS = ("工作日", "自然日", "日", "天", "个月", "月", "年", "周岁", "周", "星期", "小时", "钟头", "分钟", "元", "块", "万元",
         "点", "时", "号", "倍", "岁", "次", "档", "栋", "楼", "层", "号线", "路", "人", "份", "张", "项", "公里", "米")
_UNIT_AFTER = r"(?=\s*(?:个)?(?:" + "|".join(UNITS) + "))"
# A number is never said starting with 百, 千 or 万 (一百, 两千): a bare one is a misheard digit (付百元 for 四百元).
_NUMERAL = re.compile(r"(?<![零〇一二两三四五六七八九十百千万])(?![百千万])[零〇一二两三四五六七八九十百千万]+" + _UNIT_AFTER)
_AND_A_HALF = re.compile(r"(\d+|[一二两三四五六七八九十]+)个半(?=(?:小时|月|钟头|星期))")  # 一个半月 → 1.5个月
_HALF = re.compile(r"(?<![\d一二两三四五六七八九十个])半(个)?(?=(?:小时|月|年|天|钟头|星期))")  # 半年 → 0.5年
# two neighbouring digits are a rough count, not a number: 一两个, 三四天, 五六百元
_ROUGH = re.compile(r"^(?:一两|一二|两三|二三|三四|四五|五六|六七|七八|八九)(?:[十百千万]*)$")
_PERCENT = re.compile(r"百分之([零〇一二两三四五六七八九十百点]+)")
_ARABIC = re.compile(r"\d+(?:\.\d+)?")


def join_digit_groups(text: str) -> str:
    """``1-2-3-4-5`` / ``123-45`` → ``12345`` (five or more digits); dates such as 2026-1-5 stay."""
    def join(m: re.Match) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return digits if len(digits) >= 5 else m.group(0)

    return _SPLIT_DIGITS.sub(join, text)


def spoken_digits(text: str, min_digits: int = 3, *, join_separated: bool = False) -> str:
    """Runs of ``min_digits`` or more digit readings as Arabic digits: 幺三九零 → 1390, 腰五腰 → 151;
    ``join_separated`` also joins digits split by a space or hyphen (151 7729 → 1517729), for matching."""
    def digits(m: re.Match) -> str:
        run = m.group(0)
        if len(run) < min_digits or set(run) == {"腰"}:
            return run
        return "".join(DIGIT_OF[c] for c in run)

    text = _DIGIT_RUN.sub(digits, text)
    return _DIGIT_SEP.sub("", text) if join_separated else text


def numeral_value(numeral: str) -> float | None:
    """The value of a Chinese numeral (两千 → 2000, 一百一 → 110, 三千五 → 3500, 2.5 → 2.5); None if it is none."""
    try:
        value = cn2an.cn2an(numeral, "smart")
    except (ValueError, KeyError, IndexError):
        return None
    return float(value)


def _arabic(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def arabize(text: str) -> str:
    """Counted numerals as Arabic numbers: 两百元 → 200元, 十五个工作日 → 15个工作日, 百分之五十 → 50%,
    一个半月 → 1.5个月, 半年 → 0.5年.  Other uses of numeral characters (一下, 统一, 十分) stay."""
    def value_of(m: re.Match, suffix: str = "", plus: float = 0.0) -> str:
        numeral = m.group(1) if m.groups() else m.group(0)
        value = None if _ROUGH.match(numeral) else numeral_value(numeral)
        return m.group(0) if value is None else _arabic(value + plus) + suffix

    text = _AND_A_HALF.sub(lambda m: value_of(m, "个", 0.5), text)
    text = _PERCENT.sub(lambda m: value_of(m, "%"), text)
    text = _NUMERAL.sub(value_of, text)
    return _HALF.sub(lambda m: "0.5" + (m.group(1) or ""), text)


def number_words(text: str) -> str:
    """Arabic numbers as Chinese words, as CER compares them: 20 → 二十, 3.5 → 三点五; five or more digits, or a
    leading zero, are read digit by digit (12345, phone numbers, codes)."""
    def words(m: re.Match) -> str:
        s = m.group(0)
        whole = s.split(".", 1)[0]
        if "." not in s and (len(whole) >= 5 or (len(whole) > 1 and whole.startswith("0"))):
            return "".join("零一二三四五六七八九"[int(d)] for d in s)
        return cn2an.an2cn(s, "low")

    return _ARABIC.sub(words, text)
