"""Answer accuracy: contradicted KB facts, with a standalone retriever and an injected one."""
from __future__ import annotations

from asr.numbers import numeral_value
from qa.answers import AnswerChecker, AnswerParams, extract_facts
from qa.transcript import normalize

KB = [
    {"id": "kb1", "question": "社保卡遗失了怎么补办？",
     "answer": "本人携带身份证到社保卡窗口办理。补卡收取工本费20元。非即时制卡网点10个工作日内制卡完成。",
     "department": "来宾市社会保险服务中心"},
    {"id": "kb2", "question": "夜间施工噪声扰民怎么办？",
     "answer": "夜间（22时至次日6时）禁止产生环境噪声污染的建筑施工作业。",
     "department": "来宾市生态环境局；来宾市城市管理综合执法局"},
    {"id": "kb3", "question": "户口迁移需要回原籍开准迁证吗？",
     "answer": "直接到迁入地派出所申请，自治区内迁移实行一站式办理，不需要回原籍开具准迁证。",
     "department": "来宾市公安局（户政）"},
    {"id": "kb4", "question": "物业服务不到位向哪里反映？",
     "answer": "向街道办事处和住建局物业管理科反映，物业收费涉及价格违法的可向市场监管部门投诉。",
     "department": "来宾市住房和城乡建设局（物业管理科）；属地街道办事处"},
]


PHONE_KB = {"id": "kb5", "question": "社保卡挂失打什么电话？", "answer": "挂失电话是社保服务热线12333。"}


def call(question, answer):
    return normalize([{"role": "caller", "start_ms": 0, "end_ms": 3000, "text": question},
                      {"role": "agent", "start_ms": 3500, "end_ms": 9000, "text": answer}])


def test_numbers_in_spoken_and_written_form():
    assert numeral_value("两万三千零五") == 23005 and numeral_value("十五") == 15
    kinds = {(f.kind, f.unit, f.value) for f in extract_facts("晚上十一点到第二天早上七点，工本费二十元，十个工作日")}
    assert {("time", "h", 23.0), ("time", "h", 7.0), ("amount", "元", 20.0), ("duration", "工作日", 10.0)} <= kinds
    assert [f.value for f in extract_facts("每月补贴3万元，每年两千五百元")] == [30000.0, 2500.0]
    assert extract_facts("每人每年付百元") == []  # 四百元 misheard: no one says a bare 百元


def test_correct_answers_pass():
    checker = AnswerChecker(KB)
    assert checker.check(call("社保卡丢了怎么补？", "带身份证到窗口补办，工本费20元，10个工作日内制好卡。")) == []
    assert checker.check(call("工地晚上施工吵", "夜间22点到早上6点禁止施工。")) == []


def test_contradicted_facts_are_reported_with_evidence():
    checker = AnswerChecker(KB)
    (err,) = checker.check(call("社保卡丢了怎么补？", "补卡要交工本费50元。"))
    assert (err.kb_id, err.error_type, err.severity) == ("kb1", "amount", "serious")
    assert err.to_dict()["evidence"]["start_ms"] == 3500 and "20元" in err.kb_fact
    (err,) = checker.check(call("工地晚上施工吵", "夜间禁止施工的时间是晚上11点到第二天早上7点。"))
    assert err.error_type == "time" and err.kb_id == "kb2"
    (err,) = checker.check(call("户口从忻城迁到兴宾区怎么办", "您要先回原籍派出所开一张准迁证。"))
    assert err.error_type == "process" and "不需要" in err.kb_fact
    (err,) = checker.check(call("物业服务不到位找谁", "物业服务的问题是归市场监督管理局管的。"))
    assert err.error_type == "department"


def test_caller_facts_repeated_by_agent_are_not_errors():
    checker = AnswerChecker(KB)
    segs = normalize([{"role": "caller", "start_ms": 0, "end_ms": 3000, "text": "工地每天施工到十二点，太吵了"},
                      {"role": "agent", "start_ms": 3500, "end_ms": 9000, "text": "您反映工地施工到12点，我帮您登记。"}])
    assert checker.check(segs) == []


def test_injected_retrieval_is_used():
    calls = []

    def retrieve(query, k):
        calls.append(query)
        return [("kb1", 0.9)]

    checker = AnswerChecker(KB, retrieve)
    assert checker.check(call("问个事", "工本费50元。"))[0].kb_id == "kb1"
    assert calls


def test_office_floor_contradiction_is_minor():
    kb = [{"id": "kb9", "question": "二手房过户在哪里办？", "answer": "到政务服务中心2楼不动产登记窗口办理，登记费80元。",
           "department": "来宾市不动产登记中心"}]
    (err,) = AnswerChecker(kb).check(call("二手房过户去哪办", "您到政务服务中心3楼不动产登记窗口办理。"))
    assert err.error_type == "location" and err.severity == "minor"
    assert AnswerChecker(kb).check(call("二手房过户去哪办", "到政务服务中心二楼不动产登记窗口。")) == []


def test_the_greeting_before_the_caller_speaks_is_not_an_answer():
    """ASR can mishear the hotline's own number in the greeting (12325); nothing has been asked yet."""
    checker = AnswerChecker(KB + [PHONE_KB])
    greeting = {"role": "agent", "start_ms": 0, "end_ms": 3000, "text": "您好，来宾12325热线，请问有什么可以帮您？"}
    asked = {"role": "caller", "start_ms": 3500, "end_ms": 6000, "text": "社保卡挂失打什么电话？"}
    answer = {"role": "agent", "start_ms": 6500, "end_ms": 9000, "text": "挂失电话是社保服务热线12333。"}
    assert checker.check(normalize([greeting, asked, answer])) == []
    (err,) = checker.check(normalize([greeting, asked, {**answer, "text": "挂失电话是社保服务热线12325。"}]))
    assert err.error_type == "phone" and err.kb_id == "kb5"  # the same number in an answer is checked


def test_a_phone_number_read_back_to_the_caller_is_not_checked_against_the_kb():
    checker = AnswerChecker(KB + [PHONE_KB])
    read_back = normalize([{"role": "caller", "start_ms": 0, "end_ms": 3000, "text": "社保卡挂失，我电话腰五腰77291637"},
                           {"role": "agent", "start_ms": 3500, "end_ms": 9000, "text": "您的电话15177291637，我帮您挂失。"}])
    assert checker.check(read_back) == []  # 腰 is how the ASR writes the spoken 幺 (1)


FEE_KB = [
    {"id": "w1", "question": "水表过户怎么办理？", "answer": "水表过户带房产证和身份证到供水营业厅办理，过户不收费。",
     "department": "来宾市供水公司"},
    {"id": "c1", "question": "社保卡遗失了怎么补办？", "answer": "补卡收取工本费20元（挂失不收费），10个工作日内制卡。",
     "department": "来宾市社会保险服务中心"},
    {"id": "p1", "question": "农村停电多久能到现场抢修？", "answer": "供电抢修人员到达现场时限：城区45分钟，农村90分钟。",
     "department": "来宾供电局"},
]


def test_fee_slot_free_against_charged_both_ways():
    checker = AnswerChecker(FEE_KB)
    charged = checker.check(call("水表过户要交钱吗？", "过户要收50元手续费，带房产证过来。"))
    assert [(e.kb_id, e.error_type) for e in charged] == [("w1", "fee")]
    free = checker.check(call("社保卡丢了补办要钱吗？", "补卡是不收费的，您带身份证去窗口。"))
    assert [(e.kb_id, e.error_type) for e in free] == [("c1", "fee")]
    assert checker.check(call("水表过户收费吗？", "过户是免费的，不收钱。")) == []
    assert checker.check(call("社保卡丢了补办要钱吗？", "补卡要交工本费二十块。")) == []


def test_durations_compare_in_one_unit():
    checker = AnswerChecker(FEE_KB)
    assert checker.check(call("我们村停电了，抢修多久能到？", "农村地区抢修人员到达现场的时限是一个半小时。")) == []
    late = checker.check(call("我们村停电了，抢修多久能到？", "农村地区抢修人员到达现场的时限是三个小时。"))
    assert [e.error_type for e in late] == ["duration"]


def test_the_hotlines_promise_the_callers_story_and_the_read_back_are_not_kb_facts():
    checker = AnswerChecker(FEE_KB)
    segs = normalize([
        {"role": "caller", "start_ms": 0, "end_ms": 3000, "text": "我们村上月15日停电，今天早上7点又停了，停了三个多钟头。"},
        {"role": "agent", "start_ms": 3500, "end_ms": 9000, "text": "好的，我帮您登记工单转供电局，5个工作日内给您回复。"},
        {"role": "caller", "start_ms": 9500, "end_ms": 11000, "text": "好的。"},
        {"role": "agent", "start_ms": 11500, "end_ms": 18000,
         "text": "跟您复述一下：您反映村里上月15日和今天停电超过3小时，工单转供电局处理。"},
    ])
    assert checker.check(segs) == []


def test_a_read_back_the_asr_garbled_is_still_a_read_back():
    """跟您复述一下 heard as 附数一下 (the same sound), or not recognisable at all but reading back the caller's
    number and what they reported: the number (heard differently from the caller's own) is not checked against
    the KB's phone numbers."""
    checker = AnswerChecker(KB + [PHONE_KB])
    caller = {"role": "caller", "start_ms": 0, "end_ms": 3000, "text": "社保卡丢了要挂失，我姓陆。"}
    for heard in ("跟您附数一下陆女士，电话15296014338，社保卡挂失。",
                  "跟您附受一下路理数，电话15296014338，反应社保卡丢了要挂失。",
                  "好的陆女士，电话15296014338，社保卡挂失我帮您登记。"):
        segs = normalize([caller, {"role": "agent", "start_ms": 3500, "end_ms": 9000, "text": heard}])
        assert checker.check(segs) == [], heard
    answer = normalize([caller, {"role": "agent", "start_ms": 3500, "end_ms": 9000,
                                 "text": "社保卡挂失请打电话12366。"}])
    assert [e.error_type for e in checker.check(answer)] == ["phone"]  # an answer is still checked


def test_a_split_read_back_and_the_callers_number_as_each_side_misheard_it():
    """The VAD splits a long read-back: the parts after 跟您确认 (heard as 确认一项) are read-back too until the
    caller speaks; the agent's number is the caller's when it is a few digits off theirs (each side's ASR erred,
    要 for 幺); a mobile number is not the entry's service line."""
    checker = AnswerChecker(KB + [PHONE_KB])
    caller = {"role": "caller", "start_ms": 0, "end_ms": 3000, "text": "社保卡挂失，电话要8977265130。"}
    agent = lambda t, at: {"role": "agent", "start_ms": at, "end_ms": at + 2000, "text": t}  # noqa: E731
    assert checker.check(normalize([caller, agent("跟您确认一项陆女士。", 3500), agent("电话12366。", 6000),
                                    agent("反映社保卡丢失，补卡工本费50元。", 8500)])) == []
    assert checker.check(normalize([caller, agent("好的，电话1897265130。", 3500)])) == []
    assert checker.check(normalize([caller, agent("挂失您打13978261453。", 3500)])) == []


def test_a_misheard_number_or_unit_goes_to_review_and_a_homophone_of_the_entry_passes():
    """A number of no phone format (a digit lost) and a value that differs from the entry's only in 日/月 are not
    deducted but sent to a person; 百分之六时 and 一块儿 sound like the entry's 60% and 1.20元 and pass."""
    kb = [PHONE_KB, {"id": "r1", "question": "公租房租金怎么定？", "answer": "租金按同地段市场租金的60%确定。"},
          {"id": "r2", "question": "押金多久退？", "answer": "押金应在退租交接后3日内退还。"},
          {"id": "r3", "question": "物业费多少钱？", "answer": "一级服务每月每平方米1.20元。"}]
    checker = AnswerChecker(kb)
    (err,) = checker.check(call("社保卡挂失打什么电话？", "挂失电话是123336。"))
    assert err.needs_review and err.to_dict()["review_reason"]
    (err,) = checker.check(call("押金多久退？", "押金应该在退租交接后三月内退还。"))
    assert err.needs_review and err.error_type == "duration"
    assert not checker.check(call("押金多久退？", "押金应该在退租交接后三周内退还。"))[0].needs_review
    assert checker.check(call("公租房租金怎么定？", "按同地段市场租金的百分之六时收取。")) == []
    assert checker.check(call("物业费多少钱？", "一级服务是每月每平方米一块儿。")) == []
    assert [e.error_type for e in checker.check(call("物业费多少钱？", "一级服务是每月每平方米一块五。"))] == ["amount"]


def test_a_value_the_asr_wrote_a_syllable_short_goes_to_review_but_not_on_typed_text():
    """二十四小时 written 十四小时 and 一块二 written 一块 by the ASR are sent to a person; typed, they are errors, and a
    value the agent got wrong (三年 for 两年) is deducted through the ASR too."""
    kb = [{"id": "s1", "question": "井盖丢了多久修好？", "answer": "处置单位24小时内修复。"},
          {"id": "s2", "question": "物业费多少钱？", "answer": "一级服务每月每平方米1.20元。"},
          {"id": "s3", "question": "户外广告许可有效期多久？", "answer": "户外广告设置许可有效期最长2年。"}]
    checker = AnswerChecker(kb)

    def heard(question, answer):
        return normalize([{"role": "caller", "start_ms": 0, "end_ms": 3000, "text": question, "confidence": 0.9},
                          {"role": "agent", "start_ms": 3500, "end_ms": 9000, "text": answer, "confidence": 0.9}])

    for question, answer in (("井盖丢了多久修好？", "处置单位十四小时内修复。"), ("物业费多少钱？", "一级服务每月每平方米一块。")):
        (err,) = checker.check(heard(question, answer))
        assert err.needs_review and "识别错误" in err.to_dict()["review_reason"]
        (typed,) = checker.check(call(question, answer))
        assert not typed.needs_review
    (err,) = checker.check(heard("户外广告许可有效期多久？", "许可有效期最长三年。"))
    assert not err.needs_review and err.error_type == "duration"
    assert not AnswerChecker(kb, params=AnswerParams(review_syllables_apart=0)).check(
        heard("井盖丢了多久修好？", "处置单位十四小时内修复。"))[0].needs_review


DEADLINE_KB = [
    {"id": "kb6", "question": "公积金转移要多久？", "answer": "转出地在15个工作日内办理转出手续并转移基金。"},
    {"id": "kb7", "question": "道路标线模糊什么时候重新划？", "answer": "标线模糊需重新施划的纳入季度施划计划，季度末前完成。"},
    {"id": "kb8", "question": "耕地地力保护补贴什么时候发？", "answer": "耕地地力保护补贴每年6月底前通过一卡通发放到户。"},
    {"id": "kb9", "question": "网约车投诉多久处理？", "answer": "网约车平台应在24小时内响应、5个自然日内处理完毕。"},
]


def test_time_windows_and_day_kinds_are_facts():
    facts = {(f.kind, f.unit, f.value) for f in extract_facts("15个自然日，6月底前，年底前，每季度末，月底前")}
    assert facts == {("duration", "天", 15.0), ("date", "md", 630.0), ("date", "md", 1231.0), ("period", "end", 3.0),
                     ("period", "end", 1.0)}


def test_working_days_against_calendar_days_and_periods():
    checker = AnswerChecker(DEADLINE_KB)
    (err,) = checker.check(call("公积金转移要多久", "转出地要在15个自然日内办理转出手续。"))
    assert (err.kb_id, err.error_type) == ("kb6", "duration")
    (err,) = checker.check(call("标线模糊什么时候重新划", "月底前就能重新划好。"))
    assert (err.kb_id, err.error_type) == ("kb7", "period")
    (err,) = checker.check(call("地力补贴什么时候发", "每年年底前通过一卡通发放到户。"))
    assert (err.kb_id, err.error_type) == ("kb8", "date")
    # the entry's own deadline, misquoted, is checked (only 给您回复/答复 is the hotline's promise)
    (err,) = checker.check(call("网约车投诉多久处理", "平台会在5个工作日内处理完毕。"))
    assert (err.kb_id, err.error_type) == ("kb9", "duration")
    assert checker.check(call("公积金转移要多久", "转出地在15个工作日内办理转出手续。")) == []
    assert checker.check(call("网约车投诉多久处理", "我们5个工作日内给您回复。")) == []


def test_spoken_prices_and_afternoon_ranges():
    assert [(f.kind, f.value) for f in extract_facts("每立方米1块2")] == [("amount", 1.2)]
    assert [f.value for f in extract_facts("下午2点半到5点半上班") if f.kind == "time"] == [14.5, 17.5]
    assert [f.value for f in extract_facts("上午8点到12点") if f.kind == "time"] == [8.0, 12.0]


def test_time_ago_is_no_duration_and_hours_may_be_钟头():
    assert extract_facts("刚刚半个钟头前在菜市场门口走散了") == []
    assert extract_facts("三天前报的修") == []
    assert [(f.unit, f.value) for f in extract_facts("两个钟头内到场")] == [("分钟", 120.0)]


def test_a_month_of_the_year_is_no_duration():
    """从次月起 written 从4月起 by the ASR is when a benefit starts, not a duration to compare with the entry's."""
    assert extract_facts("评审通过的从4月起就可以享受待遇") == []
    assert extract_facts("每年3月到5月，4月份开始报名") == []
    assert extract_facts("1月要在五个工作室内答复") == []  # 医院要在… heard as 1月要在…
    assert [(f.unit, f.value) for f in extract_facts("要在失业之日起30月内申领，有效期3个月")] == [("月", 30.0), ("月", 3.0)]


def test_a_department_is_checked_against_the_calls_topic_only_when_the_turn_is_about_it():
    """A garbled first sentence can make the call's topic the wrong entry (电梯 for a street stall); a department
    the agent names about something else then contradicts nothing."""
    kb = [{"id": "lift", "question": "电梯困人怎么办？", "answer": "拨打维保单位救援电话。",
           "department": "来宾市市场监督管理局"},
          {"id": "stall", "question": "占道摆摊谁管？", "answer": "占道经营由城管执法部门查处。",
           "department": "来宾市城市管理综合执法局"}]
    words = {"lift": ("电梯", "困"), "stall": ("摆摊", "菜市场")}

    def retrieve(query, k):
        hits = [(i, sum(w in query for w in ws)) for i, ws in words.items()]
        return [(i, float(n)) for i, n in sorted(hits, key=lambda x: -x[1]) if n][:k]

    checker = AnswerChecker(kb, retrieve)
    turn = lambda role, text, at: {"role": role, "start_ms": at, "end_ms": at + 2000, "text": text}  # noqa: E731
    stall = normalize([turn("caller", "我们家楼下电梯门口每天一堆人", 0), turn("agent", "请问是在哪里？", 2500),
                       turn("caller", "东门菜市场门口，摆摊卖菜的", 5000),
                       turn("agent", "占道摆摊是由城管执法部门负责查处的。", 7500)])
    assert checker.check(stall) == []
    lift = normalize([turn("caller", "电梯坏了，有人困在里面", 0), turn("agent", "电梯困人是由城管执法部门负责的。", 2500)])
    assert [e.error_type for e in checker.check(lift)] == ["department"]
