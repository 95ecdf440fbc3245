"""Answer accuracy (解答准确率): does what the agent said contradict the KB entry it should match?

For every agent sentence we retrieve candidate KB entries (an injected ``retrieve`` callable, so
the knowledge helper's retrieval can be used; ``LexicalRetriever`` works standalone), extract
typed facts from both sides and report a contradiction when

- a number of the same kind (amount, percent, duration/deadline, date, clock time, floor/window,
  phone) is
  stated in a KB clause about the same thing (shared context) but the agent's value appears in
  none of the candidate entries;
- the agent names a responsible department (归/由 X 管/负责) that is not the entry's department;
- the agent asserts a step the KB explicitly rules out (KB: 不需要/无需 X; agent: X, not negated).

Emergency routing errors (an emergency not transferred to 110) come from the scorecard's
``police_110`` item and are added by ``qa.scoring``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from asr.numbers import arabize, number_words
from asr.pinyin import sound_view
from qa.transcript import Segment

Retrieve = Callable[[str, int], list]


@dataclass(frozen=True)
class KBEntry:
    id: str
    question: str
    answer: str
    department: str = ""
    category: str = ""


@dataclass(frozen=True)
class AnswerParams:
    """Named thresholds of the answer check (tunable with ``qa.scoring.tune``)."""
    top_k: int = 3  # candidate entries per sentence
    topic_k: int = 3  # call-level candidate entries (from what the caller said)
    min_context: int = 1  # shared content bigrams between the agent clause and the KB clause
    min_neg_terms: int = 2  # terms of a KB "不需要 X" phrase the agent must repeat un-negated
    serious_types: tuple[str, ...] = ("fee", "amount", "percent", "duration", "date", "time", "phone",
                                      "department", "process", "routing")  # "location" (floor/window) is minor
    # the hotline's own promise (工单…5个工作日内回复您) and the caller's story (上月15日, 今天早上7点) are not KB facts
    # (办结 and 处理完毕 only with 给您: 平台应在5个自然日内处理完毕 is the entry's own deadline)
    commitment_after: str = r"^(?:内|之内|以内)?(?:(?:给您|跟您|给你)(?:答复|回复|联系|回电|反馈|办结|回访|处理)|答复|回复|联系|回电|反馈|回访)"
    story_before: str = r"(?:上个?月|昨天|前天|今天|今早|刚才|去年|前年|那天|当天|上周|上星期)[^，。]{0,6}$"
    # a read-back restates the caller's request and what was already answered: its facts were checked where first
    # said, and the caller's own figures (停电三个多小时) are not the KB's
    read_back: str = r"(跟|和|向|给)(您|你)(复述|确认|核对)|(您|你)(复述|确认|核对)一下|(复述|确认|核对)一下"
    # … also when the ASR garbled that phrase (matched by sound too: 附数一下), recognised by what it reads back:
    # the caller's phone number then what they reported, their title then their number, or a turn of 电话 and a number
    contact_read_back: str = (r"电话[^。！？]{0,4}[0-9零幺一二三四五六七八九]{7,}.{0,24}(反映|反应)|"
                              r"(先生|女士|大爷|阿姨|阿婆|大姐|大哥|师傅)[，。,、\s]*电话|"
                              r"^(电话|手机|号码)[是要幺腰：:，,\s]{0,2}[0-9零幺一二三四五六七八九]{7,}[。，！？]?$")
    # yes/no slots (free or charged): only the entry's statement about the same thing counts, since some entry
    # always says "free" about something
    slot_kinds: tuple[str, ...] = ("fee",)
    # an error found in agent speech the ASR was less sure of than this is shown as "needs review", never deducted;
    # fitted for F0.5 of deducted errors on the ASR transcripts of 140 labelled calls (the 40 shared ones and corpus
    # c101-c200); ``hotline eval calls --folds`` fits it again on each fold's training calls
    review_below_confidence: float = 0.7
    # phone numbers by kind (mainland formats): an agent's number is compared only with an entry's number of its
    # kind, and one of no kind (a digit dropped or added) is a misheard number, so its flag goes to review
    phone_kinds: tuple[tuple[str, str], ...] = (("mobile", r"1[3-9]\d{9}"), ("landline", r"0\d{9,11}|[2-8]\d{6,7}"),
                                                ("service", r"1\d{2,4}|9\d{4}"))
    # the agent repeats the caller's number when it is this close to digits the caller said (edits per digit):
    # each side's ASR mishears the digits differently
    callers_number_edits: float = 0.3
    # a value that differs from the entry's only in a unit the ASR confuses (十五日内 written 十五月内) goes to review
    unit_confusions: tuple[tuple[str, str], ...] = (("日", "月"),)
    # in ASR text, a value whose spoken form is the entry's with up to this many syllables dropped or added
    # (二十四小时 written 十四小时, 一块二 written 一块, 有效期十年 written 有效七十年) goes to review: the ASR's
    # commonest number error, made with confidence.  None of the 85 labelled wrong values of the 240 labelled
    # calls is so close to the entry's (an agent who misremembers says 三年 for 两年, not 十二年).  0: off
    review_syllables_apart: int = 1


def load_kb(rows: Iterable[Any]) -> list[KBEntry]:
    """KB entries from dicts (kb.jsonl), ORM rows or ``KBEntry`` objects."""
    out = []
    for r in rows:
        if isinstance(r, KBEntry):
            out.append(r)
            continue
        get = (lambda k, d="": r.get(k, d)) if isinstance(r, dict) else (lambda k, d="": getattr(r, k, d))
        out.append(KBEntry(str(get("id") or get("external_id")), get("question") or get("title"),
                           get("answer") or get("body"), get("department") or "", get("category") or ""))
    return out


# ------------------------------------------------------------------ standalone retrieval
def _bigrams(text: str) -> list[str]:
    t = re.sub(r"[\W\d_]", "", text)
    return [t[i:i + 2] for i in range(len(t) - 1)]


class LexicalRetriever:
    """Character-bigram TF-IDF cosine over question+answer; ``retriever(query, k) -> [(id, score)]``."""

    def __init__(self, entries: list[KBEntry]):
        self.ids = [e.id for e in entries]
        docs = [_bigrams(e.question * 2 + e.answer) for e in entries]
        df: dict[str, int] = {}
        for d in docs:
            for g in set(d):
                df[g] = df.get(g, 0) + 1
        self.idf = {g: math.log((1 + len(docs)) / (1 + n)) + 1 for g, n in df.items()}
        self.vecs = [self._vec(d) for d in docs]

    def _vec(self, grams: list[str]) -> dict[str, float]:
        tf: dict[str, float] = {}
        for g in grams:
            if g in self.idf:
                tf[g] = tf.get(g, 0) + self.idf[g]
        norm = math.sqrt(sum(v * v for v in tf.values())) or 1.0
        return {g: v / norm for g, v in tf.items()}

    def __call__(self, query: str, k: int = 3) -> list[tuple[str, float]]:
        q = self._vec(_bigrams(query))
        scores = [(i, sum(v * d.get(g, 0.0) for g, v in q.items())) for i, d in zip(self.ids, self.vecs)]
        return sorted(scores, key=lambda x: -x[1])[:k]


def _ids(hits: list) -> list[str]:
    out = []
    for h in hits:
        if isinstance(h, (tuple, list)):
            h = h[0]
        out.append(str(getattr(h, "entry_id", getattr(h, "id", h))))
    return out


# ------------------------------------------------------------------ fact extraction
@dataclass(frozen=True)
class Fact:
    kind: str  # fee|amount|percent|duration|date|period|time|location|phone
    unit: str
    value: float
    text: str
    clause: str
    window: str = ""  # the previous clause + this one

    @property
    def slot(self) -> tuple[str, str]:
        """What this value may be compared with: a duration in any unit (15个工作日 and 15个自然日 differ, as do
        24小时 and 5个工作日), every other kind in its own unit."""
        return (self.kind, "" if self.kind == "duration" else self.unit)

    @property
    def reading(self) -> tuple[str, float]:
        return (self.unit, self.value)


_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*(万)?(?:元|块钱|块)(?:(?<=[元块])(\d)(?![\d.%个]))?")  # 1块2 is 1.2元; 5000元9个档 is not
_FACT_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("date", re.compile(r"(\d{1,2})月(\d{1,2})(?:日|号)")),
    ("month_end", re.compile(r"(\d{1,2})月(?:底|末|份?结束)")),  # 6月底: a date, the month's last day
    ("year_part", re.compile(r"年底|年末|年终|上半年")),  # dates too: 12月31日, 6月30日
    ("period", re.compile(r"(?<!\d)(?:每个?)?(月底|月末|季度末|季末|季度结束)")),  # the end of any month or quarter
    ("amount", _AMOUNT),
    ("percent", re.compile(r"(\d+(?:\.\d+)?)\s*%")),
    ("duration", re.compile(r"(?<!第)(?<![\d.])(\d+(?:\.\d+)?)\s*(?:个)?(工作日|自然日|日|天|月|年|周|小时|钟头|分钟)(?!\d)")),  # not 第2年
    ("time", re.compile(r"(凌晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜间|夜里|次日|第二天早上|第二天)?\s*(\d{1,2})\s*(?:点|时|:)(半|\d{2}分?)?")),
    ("location", re.compile(r"(\d{1,2})\s*(楼|层|号窗口)(?![\d栋])")),
    ("phone", re.compile(r"(?<![\d.])(\d{5,12})(?![\d.%元])")),
]
_CLAUSE = re.compile(r"[^，。；！？,;!?]+")
# months said as a span have 个 (三个月内); a bare 月 is one only before what bounds a span (the ASR writes 三十日内
# as 三十月内, which goes to review as a unit it confuses)
_MONTHS_AFTER = re.compile(r"内|以内|之内|以上|以后|后")
# durations compared in one unit where the conversion is exact (一个半小时 = 90分钟); 工作日, 月, 年 stay apart
_DURATION_UNITS = {"日": ("天", 1), "自然日": ("天", 1), "周": ("天", 7), "小时": ("分钟", 60), "钟头": ("分钟", 60)}
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_YEAR_PART = {"年底": 1231, "年末": 1231, "年终": 1231, "上半年": 630}
_PERIOD = {"月底": 1, "月末": 1, "季度末": 3, "季末": 3, "季度结束": 3}  # months in the period
# the fee slot: free (0) or charged (1, an amount said with a fee word)
_FREE = re.compile(r"不收费|免费|不收钱|不要钱|不用(交)?钱|不用(交|缴)费|不收取|免收|免交|无需(缴|交)费|不需要(交|缴)(费|钱)|分文不取|"
                   r"一分钱(都)?不用")
_FEE_WORDS = re.compile(r"费|收取?|交|缴")
_ASIDE = re.compile(r"[（）()]")


def extract_facts(text: str) -> list[Fact]:
    facts: list[Fact] = []
    norm = arabize(text)
    clauses = _CLAUSE.findall(norm)
    for ci, clause in enumerate(clauses):
        window = "".join(clauses[max(0, ci - 1):ci + 1])
        taken: list[tuple[int, int]] = []
        afternoon = False
        for kind, pat in _FACT_PATTERNS:
            for m in pat.finditer(clause):
                if any(a < m.end() and m.start() < b for a, b in taken):
                    continue
                if kind == "date":
                    unit, value = "md", int(m.group(1)) * 100 + int(m.group(2))
                elif kind == "month_end":
                    month = int(m.group(1))
                    if not 1 <= month <= 12:
                        continue
                    kind, unit, value = "date", "md", month * 100 + _MONTH_DAYS[month - 1]
                elif kind == "year_part":
                    kind, unit, value = "date", "md", _YEAR_PART[m.group()]
                elif kind == "period":
                    unit, value = "end", _PERIOD[m.group(1)]
                elif kind == "amount":
                    unit, value = "元", float(m.group(1)) * (10000 if m.group(2) else 1) + int(m.group(3) or 0) / 10
                elif kind == "percent":
                    unit, value = "%", float(m.group(1))
                elif kind == "duration":
                    unit, scale = _DURATION_UNITS.get(m.group(2), (m.group(2), 1))
                    value = float(m.group(1)) * scale
                    if clause[m.end():m.end() + 1] == "前":  # 半小时前, 三天前: when something happened
                        continue
                    if m.group(2) == "月" and "个" not in m.group() and not _MONTHS_AFTER.match(clause, m.end()):
                        continue  # 从4月起, 4月份, 医院 heard as 1月: a month of the year, or no number at all
                elif kind == "time":
                    hour = int(m.group(2))
                    if hour > 24:
                        continue
                    if m.group(1):  # 下午2点半到5点半: the second time is in the afternoon too
                        afternoon = m.group(1) in ("下午", "傍晚", "晚上", "夜间", "夜里")
                    if afternoon and hour < 12:
                        hour += 12
                    minutes = m.group(3) or ""
                    unit, value = "h", hour + (0.5 if minutes == "半" else int(minutes.rstrip("分") or 0) / 60)
                elif kind == "location":
                    unit, value = {"层": "楼"}.get(m.group(2), m.group(2)), float(m.group(1))
                else:
                    unit, value = "", float(m.group(1))
                taken.append((m.start(), m.end()))
                facts.append(Fact(kind, unit, float(value), m.group(), clause, window))
        for part in _ASIDE.split(clause):  # 补卡收取工本费20元（挂失不收费）: two fee statements
            free = _FREE.search(part)
            if free:
                facts.append(Fact("fee", "", 0.0, free.group(), part, window))
            elif _FEE_WORDS.search(part) and (amount := _AMOUNT.search(part)):
                facts.append(Fact("fee", "", 1.0, amount.group(), part, window))
    return facts


_STOP_BIGRAMS = {"可以", "需要", "您的", "如果", "的话", "一下", "我们", "这个", "就是", "以后", "以内", "之内",
                 "一般", "一个", "时候", "或者", "还是", "是的", "好的", "不是", "没有", "月日", "工作", "作日"}


def _context(clause: str) -> set[str]:
    return {g for g in _bigrams(clause) if g not in _STOP_BIGRAMS}


_FEE_CONTEXT = re.compile(r"收取?|费用?|交|缴|钱|免|不|要")


def _slot_context(fact: Fact, wide: bool = False) -> set[str]:
    """What a fact is about: its clause without the value itself (不收费 and 收费 share no topic); ``wide``: with
    the clause before it (an entry's 需重新施划的纳入季度计划，季度末前完成 is one statement)."""
    clause = (fact.window if wide and fact.window else fact.clause).replace(fact.text, "")
    return _context(_FEE_CONTEXT.sub("", clause) if fact.kind == "fee" else clause)


# departments: "归X管" / "由X负责" / "是X管的" / "X负责查处"
_DEPT = r"([\u4e00-\u9fa5]{2,16}?(?:局|委员会|委|中心|大队|支队|派出所|办事处|街道|社区|部门|公司|管委会|所))"
_DEPT_ASSERT = [re.compile(p) for p in (
    r"(?:归|属于)" + _DEPT + r"(?:管|负责|处理|受理)",
    r"由" + _DEPT + r"(?:负责|管理|受理|处理|查处)",
    r"是" + _DEPT + r"管",
)]
# a leading place (XX市, XX区, XX县, XX自治县) or 市/县/区 alone: any tenant's, none named here
_ADMIN_PREFIX = re.compile(r"^(?:的问题是|的|是|属地|[\u4e00-\u9fa5]{2,5}?(?:自治县|市|县|区)(?=[\u4e00-\u9fa5]{2})|市|县|区)+")
_DEPT_SUFFIX = re.compile(r"(?:局|委员会|委|中心|部门|所)$")


def _core(name: str) -> str:
    return _DEPT_SUFFIX.sub("", _ADMIN_PREFIX.sub("", name))


def _in_order(short: str, long: str) -> int:
    """Longest common subsequence: characters of ``short`` found in ``long`` in order."""
    prev = [0] * (len(long) + 1)
    for a in short:
        cur = [0]
        for j, b in enumerate(long):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def dept_matches(name: str, department_field: str, min_ratio: float = 0.75) -> bool:
    """Abbreviations (城管执法 ~ 城市管理综合执法局) and slightly mis-heard names still match."""
    core = _core(name)
    if not core:
        return True
    for dept in re.split(r"[；;、，,（）()和及]", department_field):
        d = _core(dept.strip())
        if d and max(_in_order(core, d) / len(core), _in_order(d, core) / len(d)) >= min_ratio:
            return True
    return False


_NEGATED = re.compile(r"(?:不需要|无需|不用|不必|无须|不需)([^，。；,;]{2,16})")
_NEG_WORDS = re.compile(r"不需要|无需|不用|不必|无须|不需|不要|没有|不能|不是|是不是|吗|么")


def _terms(text: str) -> list[str]:
    import jieba

    return [w for w in jieba.lcut(text) if len(w) >= 2 and not re.search(r"\d", w)
            and w not in ("提供", "办理", "需要", "可以", "进行", "直接", "开具", "申请", "户籍")]


def _derived(fact: Fact, values: list[float]) -> bool:
    """A total computed from a per-unit KB amount (4 人 × 400元 = 1600元) is not a contradiction."""
    return fact.kind == "amount" and any(v and fact.value % v == 0 and 1 < fact.value / v <= 12 for v in values)


_DIGIT_RUN = re.compile(r"[要腰]?\d{5,}")
_NUMERAL = re.compile(r"[零〇一二两三四五六七八九十百千万点幺\d]")


def _digit_runs(text: str) -> list[str]:
    """Numbers of five or more digits in (normalised) caller text, 要/腰 before one read as 幺 (1)."""
    return [re.sub("^[要腰]", "1", m.group()) for m in _DIGIT_RUN.finditer(text)]


def _readings(value: str) -> set[str]:
    """How a KB value is said: 60% as 百分之六十, 1.20元 as 一点二零元 and 一块二, 10年 as 十年."""
    forms = {number_words(value)}
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)%", value):
        forms.add("百分之" + number_words(m.group(1)))
    if m := re.fullmatch(r"(\d+)\.(\d)0?元", value):
        forms.add(f"{number_words(m.group(1))}块{number_words(m.group(2))}")
    return forms


def _sounds_like(text: str, value: str, kb_value: str) -> bool:
    """Whether ``text`` (ASR), where it says ``value``, sounds like ``kb_value`` said aloud."""
    from difflib import SequenceMatcher

    norm = arabize(text)
    at = norm.find(value)
    if at < 0:
        return False
    start = next((a0 + (at - b0 if op == "equal" else 0) for op, a0, a1, b0, b1
                  in SequenceMatcher(None, text, norm, autojunk=False).get_opcodes() if b0 <= at < b1), -1)
    if start < 0:
        return False
    said = number_words(text[start:])
    heard = sound_view(said)
    return any(heard.startswith(sound_view(form)) and not _NUMERAL.match(said[len(form):])
                              for form in _readings(kb_value))  # 一二三三三 is not 一二三三三六


def _syllables_apart(value: str, kb_value: str, most: int) -> bool:
    """Whether ``value`` said aloud is a reading of ``kb_value`` with 1..``most`` syllables dropped or added."""
    said = number_words(value)
    for form in _readings(kb_value):
        short, long = sorted((said, form), key=len)
        rest = iter(long)
        if 0 < len(long) - len(short) <= most and all(ch in rest for ch in short):  # a subsequence
            return True
    return False


def _units_confused(value: str, kb_value: str, confusions: tuple[tuple[str, str], ...]) -> bool:
    units = {re.sub(r"[\d.个]", "", value), re.sub(r"[\d.个]", "", kb_value)}
    return any(units == set(pair) for pair in confusions)


# ------------------------------------------------------------------ the check
@dataclass
class AnswerError:
    segment: Segment
    kb_id: str
    error_type: str
    agent_text: str
    kb_fact: str
    severity: str
    detail: dict = field(default_factory=dict)
    needs_review: bool = False  # the ASR was unsure of the words the error rests on

    def to_dict(self) -> dict:
        return {"kb_id": self.kb_id, "error_type": self.error_type, "quote": self.agent_text,
                "kb_fact": self.kb_fact, "severity": self.severity, "idx": self.segment.idx,
                "asr_confidence": self.segment.confidence, "needs_review": self.needs_review,
                "evidence": self.segment.evidence(), **self.detail}


class AnswerChecker:
    def __init__(self, kb: Iterable[Any], retrieve: Retrieve | None = None, params: AnswerParams = AnswerParams()):
        self.entries = {e.id: e for e in load_kb(kb)}
        self.retrieve = retrieve or LexicalRetriever(list(self.entries.values()))
        self.params = params
        self._facts = {i: extract_facts(e.answer) for i, e in self.entries.items()}
        self._qctx = {i: _context(e.question) for i, e in self.entries.items()}
        self._values = {i: {(f.slot, f.reading) for f in fs} for i, fs in self._facts.items()}
        read_back = f"{params.read_back}|{params.contact_read_back}"
        self._read_back, self._read_back_sound = re.compile(read_back), re.compile(sound_view(read_back))
        self._negated = {i: [(m.group(0), _terms(m.group(1))) for m in _NEGATED.finditer(e.answer)]
                         for i, e in self.entries.items()}

    def candidates(self, query: str, k: int) -> list[str]:
        return [i for i in _ids(self.retrieve(query, k)) if i in self.entries]

    def check(self, segments: list[Segment]) -> list[AnswerError]:
        p = self.params
        caller_text = "".join(s.text for s in segments if s.role == "caller")[:200]
        topic = self.candidates(caller_text, p.topic_k) if caller_text else []
        errors: list[AnswerError] = []
        reading_back = False  # the VAD splits a long read-back; it goes on until the caller speaks
        for seg in segments:
            if seg.role == "caller":
                reading_back = False
            asked = [s.text for s in segments if s.role == "caller" and s.idx < seg.idx][-1:]
            if seg.role != "agent" or not asked:
                continue  # before the caller has said anything the agent greets; nothing is answered yet
            if reading_back or self._read_back.search(seg.text) or self._read_back_sound.search(sound_view(seg.text)):
                reading_back = True
                continue
            cands = list(dict.fromkeys(self.candidates(" ".join(asked + [seg.text]), p.top_k) + topic))
            before = [s for s in segments if s.role == "caller" and s.idx < seg.idx]
            heard = {(f.kind, f.unit, f.value) for s in before
                     for f in extract_facts(s.norm)}  # digits as spoken: 幺五幺… (ASR: 腰五腰…) is 151…
            numbers = [n for s in before for n in _digit_runs(s.norm)]
            err = self._check_segment(seg, cands, topic, heard, numbers)
            if err:
                err.needs_review = err.needs_review or (seg.confidence is not None
                                                        and seg.confidence < p.review_below_confidence)
                errors.append(err)
        return errors

    def severity(self, kind: str) -> str:
        return "serious" if kind in self.params.serious_types else "minor"

    def _not_a_kb_fact(self, fact: Fact) -> bool:
        at = fact.clause.find(fact.text)
        if at < 0:
            return False
        return bool(re.search(self.params.commitment_after, fact.clause[at + len(fact.text):])
                    or re.search(self.params.story_before, fact.clause[:at]))

    def _phone_kind(self, digits: str) -> str | None:
        return next((k for k, pat in self.params.phone_kinds if re.fullmatch(pat, digits)), None)

    def _callers_number(self, digits: str, numbers: list[str]) -> bool:
        from asr.text import edit_distance

        return any(edit_distance(digits, n) <= self.params.callers_number_edits * max(len(digits), len(n))
                   for n in numbers)

    def _check_segment(self, seg: Segment, cands: list[str], topic: list[str], heard: set[tuple],
                       numbers: list[str]) -> AnswerError | None:
        p = self.params
        for fact in extract_facts(seg.text):
            if fact.kind == "phone" and "12345" in fact.text:
                continue
            if self._not_a_kb_fact(fact):
                continue
            if fact.kind not in p.slot_kinds and (fact.kind, fact.unit, fact.value) in heard:
                continue  # the agent repeats what the caller said
            if fact.kind == "phone" and self._callers_number(fact.text, numbers):
                continue  # … as the ASR heard each side
            ctx, wctx = _slot_context(fact), _context(fact.window)
            scored = []  # KB statements of the same kind: (relevance, clause overlap, rank, entry, fact)
            for rank, c in enumerate(cands):
                for kf in self._facts[c]:
                    if kf.slot == fact.slot:
                        overlap = len(ctx & _slot_context(kf, wide=kf.kind not in p.slot_kinds))
                        relevance = overlap + len(wctx & self._qctx[c])
                        scored.append((relevance, overlap, rank, c, kf))
            scored = [x for x in scored if x[1] >= p.min_context]
            if not scored:
                continue  # the KB says nothing of this kind about it: extra information, not a contradiction
            # the reference is the most relevant statement (clause + entry question), ties by rank;
            # the value must appear in an entry ranked above it or in an equally relevant statement
            rel, top, rank, c, kf = max(scored, key=lambda x: (x[0], -x[2]))
            if any(x[4].reading == fact.reading and x[0] >= rel for x in scored):
                continue
            if fact.kind not in p.slot_kinds and any(r == fact.reading or _derived(fact, [r[1]]) for cc in cands[:rank + 1]
                   for slot, r in self._values[cc] if slot == fact.slot):
                continue
            if _sounds_like(seg.text, fact.text, kf.text):
                continue  # the agent said the entry's value; the ASR wrote a homophone (百分之六十 as 百分之六时)
            review = ""
            if fact.kind == "phone":
                kind = self._phone_kind(fact.text)
                if kind and self._phone_kind(kf.text) not in (kind, None):
                    continue  # a mobile number is not the entry's office line
                review = "" if kind else "号码位数不符，可能是识别错误"
            elif fact.value == kf.value and _units_confused(fact.text, kf.text, p.unit_confusions):
                review = "数值与知识库一致，仅单位不同，可能是识别错误"
            elif seg.confidence is not None and _syllables_apart(fact.text, kf.text, p.review_syllables_apart):
                review = "数值读音与知识库相近（只多或少个别字，如“二十”写成“十”），可能是识别错误"
            return AnswerError(seg, c, fact.kind, fact.text, kf.clause, self.severity(fact.kind),
                               {"kb_value": kf.text, "relevance": rel, **({"review_reason": review} if review else {})},
                               needs_review=bool(review))
        norm = arabize(seg.text)
        for pat in _DEPT_ASSERT:
            m = pat.search(norm)
            if m and topic and topic[0] in cands[:p.top_k]:  # the call's topic is also what this turn is about
                entry = self.entries[topic[0]]
                if entry.department and not dept_matches(m.group(1), entry.department):
                    return AnswerError(seg, entry.id, "department", m.group(0), entry.department,
                                       self.severity("department"))
        for c in cands[:1] + [t for t in topic[:1] if t not in cands[:1]]:
            for phrase, terms in self._negated[c]:
                for clause in _CLAUSE.findall(norm):
                    hit = [t for t in terms if t in clause]
                    if (len(hit) >= p.min_neg_terms and any(len(t) >= 3 for t in hit)
                            and not _NEG_WORDS.search(clause)):
                        return AnswerError(seg, c, "process", clause, phrase, self.severity("process"),
                                           {"terms": hit})
        return None
