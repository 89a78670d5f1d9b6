#!/usr/bin/env python3
"""Deterministic generator for the synthetic sample data in this folder.

Run:  python samples/make_samples.py

Everything written here is SYNTHETIC: texts are assembled from templates and
images are drawn with Pillow. Nothing is copied from real tweets or images.

Outputs (all next to this script):
  mvsa/data/{guid}.jpg, mvsa/data/{guid}.txt   MVSA-style folder (360 items)
  mvsa/train.txt                                guid,tag  (300 labelled rows)
  mvsa/test_without_label.txt                   guid,tag  (60 rows, tag null)
  train.csv, train.parquet                      guid,text,image,label (300 rows)
  tweets.parquet                                guid,text,image,user (60 + bad rows)
  bad/                                          broken image files used by tweets.parquet
  README.md                                     description, counts, sanity numbers

Only the standard library, numpy, Pillow and pyarrow are used. All randomness is
seeded, so reruns produce byte-identical files (with the same library versions).
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

SEED = 20240611
HERE = os.path.dirname(os.path.abspath(__file__))
MVSA = os.path.join(HERE, "mvsa")
DATA = os.path.join(MVSA, "data")
BAD = os.path.join(HERE, "bad")

LABELS = ("positive", "neutral", "negative")
N_LABELLED = {"positive": 150, "neutral": 60, "negative": 90}  # 50/20/30 of 300
N_UNLABELLED = {"positive": 30, "neutral": 12, "negative": 18}  # 60 hidden-label rows
P_TEXT_CARRIES = 0.75  # share of texts that carry their label's words
P_IMAGE_CARRIES = 0.75  # share of images drawn in their label's style (others: another style)
W, H = 96, 72
JPEG_QUALITY = 70
MAX_TOTAL_BYTES = 2 * 1024 * 1024

# --------------------------------------------------------------------------- text

# sentiment vocabulary by slot: v = verb, a = adjective, f = feeling, x = exclamation,
# s = superlative
POS = {"v": ["love", "adore", "really enjoyed"],
       "a": ["great", "amazing", "awesome", "beautiful", "fantastic", "wonderful",
             "brilliant", "perfect"],
       "f": ["happy", "excited", "so proud", "blessed", "thankful"],
       "x": ["So proud!", "Congrats!", "Thank you!", "Love it!", "Amazing!"],
       "s": ["Best", "Greatest"]}
NEG = {"v": ["hate", "cannot stand", "regret"],
       "a": ["awful", "terrible", "horrible", "disgusting", "pathetic", "shameful",
             "dreadful"],
       "f": ["angry", "sad", "furious", "so disappointed", "fed up"],
       "x": ["What a disgrace.", "Ruined.", "Disgrace!", "Awful.", "Never again."],
       "s": ["Worst", "Most pathetic"]}
POS_WORDS = sorted({w.lower().strip("!.") for ws in POS.values() for w in ws})
NEG_WORDS = sorted({w.lower().strip("!.") for ws in NEG.values() for w in ws} - {"never again"})
NOUNS = ["game", "concert", "weekend", "team", "new phone", "coffee", "match", "show",
         "service", "train", "weather", "album", "election", "movie", "trip", "festival"]
PLACES = ["at the station", "in town", "at the airport", "downtown", "at the stadium",
          "on the high street", "at the office", "in the park"]
TIMES = ["today", "tonight", "this morning", "this week", "on Monday", "at 9am",
         "at 3pm", "tomorrow"]
FRIENDS = ["my friends", "the family", "the squad", "my sister", "everyone", "the kids"]

POS_TEMPLATES = [
    "I {pv} this {noun}!",
    "What a {pa} {noun} {time}",
    "{Ps} {noun} ever, {px}",
    "Had a {pa} time {place} with {friend}",
    "So {pf} about the {noun} {time}",
    "{Pa} day {place}, feeling {pf}",
    "Just saw the {noun}. {px}",
    "Honestly the most {pa} {noun} I have seen",
    "{friend} and me {place}, {pf}",
]
NEG_TEMPLATES = [
    "I {nv} this {noun}",
    "What a {na} {noun} {time}",
    "{Ns} {noun} ever. {nx}",
    "Stuck {place} again, {nf}",
    "The {noun} {time} was {na}",
    "Absolutely {na}, the {noun} is a joke",
    "{nx} The {noun} {place}",
    "Feeling {nf} after the {noun} {time}",
    "{Na} service {place}, {nf}",
]
NEU_TEMPLATES = [
    "Meeting {place} {time}",
    "The report on the {noun} is out {time}",
    "Schedule update: {noun} starts {time}",
    "Update on the {noun} {place}",
    "Council publishes agenda for the {noun} {time}",
    "Waiting {place} for the {noun}",
    "Press conference about the {noun} {time}",
    "Weather forecast for {time}: cloudy, 14C",
    "Traffic report: delays {place} {time}",
    "Statement on the {noun} released {time}",
]
MIXED_TEMPLATES = [  # ambiguous: both polarities
    "{Pa} {noun} but {na} traffic {place}",
    "I {pv} the {noun} but {nv} the crowd",
    "Not sure if {pf} or {nf} about the {noun} {time}",
]

HASHTAGS = {
    "positive": ["#BestDayEver", "#SoHappy", "#Blessed", "#GoodVibes", "#LoveIt", "#Winning"],
    "negative": ["#WorstDayEver", "#Fail", "#Fuming", "#NotHappy", "#Disgrace", "#Ugh"],
    "neutral": ["#Breaking", "#News", "#Update", "#Traffic", "#Weather", "#Agenda"],
    "generic": ["#Monday", "#London", "#Friday", "#music", "#football", "#tbt", "#nofilter"],
}
EMOJI = {"positive": ["\U0001F60D", "\U0001F389", "\u2764\ufe0f", "\U0001F602"],
         "negative": ["\U0001F621", "\U0001F622", "\U0001F44E"],
         "neutral": ["\U0001F4C5", "\U0001F4F0"]}
EMOTICONS = {"positive": [":)", ":D", ";)"], "negative": [":(", ":/", ">:("],
             "neutral": [":|"]}
USERS_A = ["sun", "blue", "city", "pixel", "river", "maple", "echo", "nova", "urban",
           "lucky", "quiet", "retro", "silver", "misty", "north"]
USERS_B = ["fox", "news", "fan", "girl", "guy", "daily", "cat", "runner", "chef",
           "reporter", "kid", "writer", "bot", "life"]


def fake_user(rng: random.Random) -> str:
    return "%s_%s%d" % (rng.choice(USERS_A), rng.choice(USERS_B), rng.randrange(1, 99))


def tco(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "http://t.co/" + "".join(rng.choice(alphabet) for _ in range(10))


def fill(rng: random.Random, template: str) -> str:
    def pick(words):
        return rng.choice(words)


    out = template
    while "{" in out:
        i = out.index("{")
        j = out.index("}", i)
        key = out[i + 1:j]
        low = key.lower()
        if low[0] in "pn" and len(low) == 2:
            val = pick((POS if low[0] == "p" else NEG)[low[1]])
        else:
            val = pick({"noun": NOUNS, "place": PLACES, "time": TIMES,
                        "friend": FRIENDS}[low])
        if key[0].isupper() or i == 0:
            val = val[0].upper() + val[1:]
        out = out[:i] + val + out[j + 1:]
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", out)


def make_text(rng: random.Random, label: str, carries: bool) -> tuple[str, str]:
    """Return (text, shown) where shown is the sentiment the words express."""
    if carries:
        shown = label
    else:
        # ambiguous / neutral-sounding / contradictory
        r = rng.random()
        if label == "neutral":
            shown = "mixed" if r < 0.4 else rng.choice(["positive", "negative"])
        elif r < 0.3:
            shown = "mixed"
        elif r < 0.75:
            shown = "neutral"
        else:
            shown = "negative" if label == "positive" else "positive"
    templates = {"positive": POS_TEMPLATES, "negative": NEG_TEMPLATES,
                 "neutral": NEU_TEMPLATES, "mixed": MIXED_TEMPLATES}[shown]
    body = fill(rng, rng.choice(templates))
    tag_class = shown if shown != "mixed" else "generic"
    parts = []
    if rng.random() < 0.2:
        parts.append("RT @%s:" % fake_user(rng))
    if rng.random() < 0.3:
        parts.append("@%s" % fake_user(rng))
    parts.append(body)
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        pool = HASHTAGS[tag_class] if rng.random() < 0.6 else HASHTAGS["generic"]
        tag = rng.choice(pool)
        if tag not in parts:
            parts.append(tag)
    emo_class = shown if shown in EMOTICONS else "neutral"
    r = rng.random()
    if r < 0.06:
        parts.append(rng.choice(EMOTICONS[emo_class]))
    elif r < 0.10:
        parts.append(rng.choice(EMOJI[emo_class]))
    if rng.random() < 0.35:
        parts.append(tco(rng))
    return " ".join(parts), shown


# cp1252 files: bytes that are not valid UTF-8 (é = 0xE9, curly quotes 0x93/0x94,
# en/em dash 0x96/0x97). Stored as decoded str in the tables.
CP1252_TEXTS = {
    "positive": "Best \u201cflat white\u201d in town at the caf\u00e9 \u2013 love it! #BestDayEver",
    "negative": "\u201cService\u201d at the caf\u00e9 was awful \u2014 worst latte ever",
    "neutral": "Caf\u00e9 on the high street opens at 9am \u2013 \u201cnew menu\u201d update",
}
EMOJI_TEXTS = {
    "positive": "So proud of the team tonight \U0001F389\U0001F60D #Winning",
    "negative": "Train cancelled AGAIN \U0001F621\U0001F44E worst service #Fail",
}

# ------------------------------------------------------------------------- images

STYLE_BG = {
    "positive": [(250, 210, 60), (250, 160, 50), (255, 190, 120), (245, 130, 80),
                 (255, 228, 140)],
    "negative": [(30, 35, 55), (55, 65, 82), (72, 78, 95), (28, 28, 34), (58, 50, 72)],
    "neutral": [(128, 128, 128), (150, 148, 145), (112, 114, 118), (165, 165, 160),
                (138, 136, 140)],
}


def jitter(rng: random.Random, rgb, amount: int):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def draw_positive(rng: random.Random, d: ImageDraw.ImageDraw):
    for _ in range(rng.randint(1, 3)):
        r = rng.randint(6, 16)
        x, y = rng.randint(0, W), rng.randint(0, H)
        col = rng.choice([(255, 240, 90), (255, 140, 0), (230, 60, 50), (255, 255, 230),
                          (120, 200, 255)])
        d.ellipse([x - r, y - r, x + r, y + r], fill=col)
    # smiley face
    r = rng.randint(12, 20)
    x, y = rng.randint(r, W - r), rng.randint(r, H - r)
    d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 225, 40), outline=(120, 70, 0))
    e = max(2, r // 6)
    d.ellipse([x - r // 3 - e, y - r // 3 - e, x - r // 3 + e, y - r // 3 + e], fill=(60, 30, 0))
    d.ellipse([x + r // 3 - e, y - r // 3 - e, x + r // 3 + e, y - r // 3 + e], fill=(60, 30, 0))
    d.arc([x - r // 2, y - r // 3, x + r // 2, y + r // 2], 20, 160, fill=(60, 30, 0), width=2)


def draw_negative(rng: random.Random, d: ImageDraw.ImageDraw):
    for _ in range(rng.randint(1, 3)):  # jagged lines
        y0 = rng.randint(5, H - 5)
        pts = [(x, y0 + rng.randint(-12, 12)) for x in range(-4, W + 8, rng.randint(6, 12))]
        col = rng.choice([(120, 130, 150), (150, 40, 40), (190, 195, 210), (90, 100, 120)])
        d.line(pts, fill=col, width=rng.randint(1, 3))
    for _ in range(rng.randint(1, 2)):  # crosses
        s = rng.randint(6, 14)
        x, y = rng.randint(s, W - s), rng.randint(s, H - s)
        col = rng.choice([(170, 30, 30), (140, 150, 170), (20, 20, 20)])
        d.line([x - s, y - s, x + s, y + s], fill=col, width=3)
        d.line([x - s, y + s, x + s, y - s], fill=col, width=3)


def draw_neutral(rng: random.Random, d: ImageDraw.ImageDraw):
    for _ in range(rng.randint(2, 5)):
        x0, y0 = rng.randint(-10, W - 10), rng.randint(-10, H - 10)
        x1, y1 = x0 + rng.randint(10, 40), y0 + rng.randint(8, 35)
        col = rng.choice([(200, 200, 195), (90, 90, 95), (150, 140, 120), (175, 178, 182),
                          (105, 110, 112)])
        d.rectangle([x0, y0, x1, y1], fill=col, outline=(70, 70, 70))
    if rng.random() < 0.5:
        y = rng.randint(10, H - 10)
        d.line([0, y, W, y], fill=(80, 80, 80), width=1)


DRAW = {"positive": draw_positive, "negative": draw_negative, "neutral": draw_neutral}


def sample_id(guid: int) -> str:
    """File and guid name of a synthetic tweet: prefixed, never a bare MVSA-style number."""
    return "syn%d" % guid


def make_image(guid: int, style: str) -> Image.Image:
    rng = random.Random(SEED * 1000 + guid)
    if style == "muted":
        # ambiguous image: a random style's shapes, washed out towards mid grey
        inner = rng.choice(LABELS)
        img = Image.new("RGB", (W, H), jitter(rng, rng.choice(STYLE_BG[inner]), 22))
        DRAW[inner](rng, ImageDraw.Draw(img))
        grey = Image.new("RGB", (W, H), jitter(rng, (135, 133, 130), 15))
        img = Image.blend(img, grey, rng.uniform(0.55, 0.75))
    else:
        img = Image.new("RGB", (W, H), jitter(rng, rng.choice(STYLE_BG[style]), 22))
        DRAW[style](rng, ImageDraw.Draw(img))
    arr = np.asarray(img, dtype=np.float32)
    nrng = np.random.default_rng([SEED, guid])
    arr = arr * nrng.uniform(0.85, 1.15)  # global brightness jitter
    arr = arr + nrng.normal(0.0, 7.0, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


# ---------------------------------------------------------------------- sanity rules

def keyword_rule(text: str) -> str:
    low = (text or "").lower()
    pos = sum(low.count(w) for w in POS_WORDS + ["#sohappy", "#goodvibes", ":)", ":d"])
    neg = sum(low.count(w) for w in NEG_WORDS + ["worst", "#fail", "#fuming", "#ugh", ":("])
    if pos > neg:
        return "positive"
    if neg > pos:
        return "negative"
    return "neutral"


# hand-set prototypes in (mean R - mean B, luminance) space, not fitted
PROTOS = {"positive": (110.0, 180.0), "neutral": (0.0, 135.0), "negative": (-20.0, 60.0)}


def colour_features(path: str):
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float64)
    r, g, b = a[..., 0].mean(), a[..., 1].mean(), a[..., 2].mean()
    return r - b, 0.299 * r + 0.587 * g + 0.114 * b


def colour_scores(feat) -> np.ndarray:
    d = np.array([np.hypot(feat[0] - PROTOS[k][0], feat[1] - PROTOS[k][1]) for k in LABELS])
    return -d


def colour_rule(feat) -> str:
    return LABELS[int(np.argmax(colour_scores(feat)))]


def fusion_rule(text: str, feat) -> str:
    """A polar prediction beats "neutral"; on opposite polar predictions text wins."""
    t = keyword_rule(text)
    return t if t != "neutral" else colour_rule(feat)


# ------------------------------------------------------------------------- main

def write_bytes(path: str, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_table(table: pa.Table, path: str):
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def main() -> int:
    for d in (MVSA, BAD):  # owned entirely by this script
        if os.path.isdir(d):
            shutil.rmtree(d)
    os.makedirs(DATA)
    os.makedirs(BAD)

    rng = random.Random(SEED)          # structure: guids, labels, order, specials
    trng = random.Random(SEED + 1)     # text content
    irng = random.Random(SEED + 2)     # image style choice (independent of text)

    labelled = [lab for lab in LABELS for _ in range(N_LABELLED[lab])]
    unlabelled = [lab for lab in LABELS for _ in range(N_UNLABELLED[lab])]
    rng.shuffle(labelled)
    rng.shuffle(unlabelled)
    guids = rng.sample(range(1, 5200), len(labelled) + len(unlabelled))
    rows = []
    for i, (guid, lab) in enumerate(zip(guids, labelled + unlabelled)):
        rows.append({"guid": guid, "label": lab, "labelled": i < len(labelled)})

    lab_rows = [r for r in rows if r["labelled"]]
    unl_rows = [r for r in rows if not r["labelled"]]
    # exactly round(p * n) carriers per label and split; text and image flags are
    # shuffled with different generators, so the two kinds of noise are independent
    for part in (lab_rows, unl_rows):
        for lab in LABELS:
            group = [r for r in part if r["label"] == lab]
            for key, p, g in (("text_carries", P_TEXT_CARRIES, trng),
                              ("image_carries", P_IMAGE_CARRIES, irng)):
                k = round(p * len(group))
                flags = [True] * k + [False] * (len(group) - k)
                g.shuffle(flags)
                for r, f in zip(group, flags):
                    r[key] = f

    # deterministic special cases (texts that carry their label)
    cp1252_guids, emoji_guids = set(), set()
    for lab in ("positive", "negative", "neutral"):
        r = rng.choice([r for r in lab_rows if r["label"] == lab and r["text_carries"]])
        cp1252_guids.add(r["guid"])
    for lab in ("positive", "negative"):
        r = rng.choice([r for r in lab_rows if r["label"] == lab and r["text_carries"]
                        and r["guid"] not in cp1252_guids])
        emoji_guids.add(r["guid"])
    gray_guids = {lab_rows[10]["guid"], unl_rows[5]["guid"]}
    cmyk_guids = {lab_rows[20]["guid"]}

    n_emoji_files = 0
    for r in rows:
        g, lab = r["guid"], r["label"]
        if g in cp1252_guids:
            text = CP1252_TEXTS[lab]
            raw = (text + "\n").encode("cp1252")
            try:
                raw.decode("utf-8")
                raise AssertionError("cp1252 sample decodes as UTF-8")
            except UnicodeDecodeError:
                pass
        elif g in emoji_guids:
            text = EMOJI_TEXTS[lab]
            raw = (text + "\n").encode("utf-8")
        else:
            text, shown = make_text(trng, lab, r["text_carries"])
            assert (shown == lab) == r["text_carries"]
            raw = (text + "\n").encode("utf-8")
        if any(e in text for es in EMOJI.values() for e in es) or g in emoji_guids:
            n_emoji_files += 1
        r["text"] = text
        r["encoding"] = "cp1252" if g in cp1252_guids else "utf-8"
        write_bytes(os.path.join(DATA, "%s.txt" % sample_id(g)), raw)

        if r["image_carries"]:
            style = lab
        elif irng.random() < 0.5:
            style = "muted"  # ambiguous: greyish, low-contrast shapes of any style
        else:
            style = irng.choice([x for x in LABELS if x != lab])
        r["image_style"] = style
        img = make_image(g, style)
        if g in gray_guids:
            img = img.convert("L")
        elif g in cmyk_guids:
            img = img.convert("CMYK")
        r["mode"] = img.mode
        r["image"] = "mvsa/data/%s.jpg" % sample_id(g)
        write_bytes(os.path.join(HERE, r["image"]), jpeg_bytes(img))

    # ---- MVSA index files
    with open(os.path.join(MVSA, "train.txt"), "w", newline="\n") as f:
        f.write("guid,tag\n")
        for r in lab_rows:
            f.write("%s,%s\n" % (sample_id(r["guid"]), r["label"]))
    with open(os.path.join(MVSA, "test_without_label.txt"), "w", newline="\n") as f:
        f.write("guid,tag\n")
        for r in unl_rows:
            f.write("%s,null\n" % sample_id(r["guid"]))

    # ---- table layout (same order as train.txt)
    with open(os.path.join(HERE, "train.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["guid", "text", "image", "label"])
        for r in lab_rows:
            w.writerow([sample_id(r["guid"]), r["text"], r["image"], r["label"]])
    train_tbl = pa.table({
        "guid": pa.array([sample_id(r["guid"]) for r in lab_rows], pa.string()),
        "text": pa.array([r["text"] for r in lab_rows], pa.string()),
        "image": pa.array([r["image"] for r in lab_rows], pa.string()),
        "label": pa.array([r["label"] for r in lab_rows], pa.string()),
    })
    write_table(train_tbl, os.path.join(HERE, "train.parquet"))

    # ---- bad files
    write_bytes(os.path.join(BAD, "empty.jpg"), b"")
    full = jpeg_bytes(make_image(999001, "positive"))
    write_bytes(os.path.join(BAD, "truncated.jpg"), full[: len(full) // 2])
    write_bytes(os.path.join(BAD, "not_an_image.jpg"),
                b"This is a plain text file with a .jpg name, not an image.\n")

    # ---- tweets.parquet: 60 unlabelled rows + bad rows
    urng = random.Random(SEED + 3)
    t_rows = [(sample_id(r["guid"]), r["text"], r["image"], fake_user(urng)) for r in unl_rows]
    long_text = " ".join(fill(trng, t) for t in (NEU_TEMPLATES + POS_TEMPLATES) * 4)
    long_text = (long_text + " ") * (2000 // len(long_text) + 1)
    long_text = long_text[:2000].rstrip()
    ok_img = [r["image"] for r in unl_rows]
    bad_rows = [  # (guid, text, image, why)
        ("90001", "Image path that does not exist", "mvsa/data/syn999999.jpg", "missing image file"),
        ("90002", "Zero byte image file", "bad/empty.jpg", "empty (0-byte) image"),
        ("90003", "Truncated JPEG file", "bad/truncated.jpg", "truncated JPEG"),
        ("90004", "Text bytes saved as .jpg", "bad/not_an_image.jpg", "not an image"),
        ("90005", None, ok_img[0], "null text (valid image)"),
        ("90006", "", ok_img[1], "empty text (valid image)"),
        ("90007", long_text, ok_img[2], "very long text (%d chars, valid image)" % len(long_text)),
        ("90008", "Path escaping the samples folder", "../outside.jpg", "path escapes folder"),
    ]
    for g, text, image, _ in bad_rows:
        t_rows.append((g, text, image, fake_user(urng)))
    tweets_tbl = pa.table({
        "guid": pa.array([t[0] for t in t_rows], pa.string()),
        "text": pa.array([t[1] for t in t_rows], pa.string()),
        "image": pa.array([t[2] for t in t_rows], pa.string()),
        "user": pa.array([t[3] for t in t_rows], pa.string()),
    })
    write_table(tweets_tbl, os.path.join(HERE, "tweets.parquet"))

    # ---- sanity check of the signal on the labelled rows (reads files back)
    y = np.array([r["label"] for r in lab_rows])
    texts = []
    for r in lab_rows:
        raw = open(os.path.join(DATA, "%s.txt" % sample_id(r["guid"])), "rb").read()
        try:
            texts.append(raw.decode("utf-8").strip())
        except UnicodeDecodeError:
            texts.append(raw.decode("cp1252").strip())
    feats = [colour_features(os.path.join(HERE, r["image"])) for r in lab_rows]
    p_text = np.array([keyword_rule(t) for t in texts])
    p_img = np.array([colour_rule(f) for f in feats])
    p_fus = np.array([fusion_rule(t, f) for t, f in zip(texts, feats)])
    acc_text = float((p_text == y).mean())
    acc_img = float((p_img == y).mean())
    acc_fus = float((p_fus == y).mean())
    majority = max(N_LABELLED.values()) / sum(N_LABELLED.values())
    text_carry = float(np.mean([r["text_carries"] for r in lab_rows]))
    img_carry = float(np.mean([r["image_style"] == r["label"] for r in lab_rows]))
    assert 0.5 < acc_text < 0.95 and 0.5 < acc_img < 0.95, (acc_text, acc_img)
    assert acc_fus > max(acc_text, acc_img), (acc_fus, acc_text, acc_img)

    counts_l = {lab: int((y == lab).sum()) for lab in LABELS}
    counts_u = {lab: sum(r["label"] == lab for r in unl_rows) for lab in LABELS}
    per_class = {}
    for lab in LABELS:
        m = y == lab
        per_class[lab] = (float((p_text[m] == lab).mean()), float((p_img[m] == lab).mean()),
                          float((p_fus[m] == lab).mean()))

    lines = [
        "labelled rows: %d  %s" % (len(lab_rows), counts_l),
        "unlabelled rows: %d (+%d bad rows in tweets.parquet)" % (len(unl_rows), len(bad_rows)),
        "texts carrying their label's words: %.1f%%; images in their label's style: %.1f%%"
        % (100 * text_carry, 100 * img_carry),
        "chance (uniform) 33.3%%, majority class %.1f%%" % (100 * majority),
        "keyword rule (text only):        %.1f%%" % (100 * acc_text),
        "mean-colour rule (image only):   %.1f%%" % (100 * acc_img),
        "fusion (keywords if polar, else colour): %.1f%%" % (100 * acc_fus),
    ]
    for lab in LABELS:
        lines.append("  %-8s recall  text %.2f  image %.2f  fusion %.2f" % ((lab,) + per_class[lab]))
    for line in lines:
        print(line)

    write_readme(counts_l, counts_u, bad_rows, cp1252_guids, emoji_guids, gray_guids,
                 cmyk_guids, n_emoji_files, acc_text, acc_img, acc_fus, majority)

    total, nfiles = 0, 0
    for root, dirs, files in os.walk(HERE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for fn in files:
            total += os.path.getsize(os.path.join(root, fn))
            nfiles += 1
    print("total size of samples/: %d bytes (%.1f KiB) in %d files" % (total, total / 1024, nfiles))
    assert total < MAX_TOTAL_BYTES, total
    return 0


def write_readme(counts_l, counts_u, bad_rows, cp1252_guids, emoji_guids, gray_guids,
                 cmyk_guids, n_emoji_files, acc_text, acc_img, acc_fus, majority):
    s = sorted
    bad_lines = "\n".join("| %s | %s | %s |" % (g, ("`%s`" % img), why)
                          for g, _, img, why in bad_rows)
    text = f"""# Sample data (synthetic)

Everything in this folder is **synthetic**, produced by `make_samples.py`:
tweet texts are assembled from templates and word lists, images are drawn with
Pillow (background colour + a few shapes + pixel noise). No real tweet or image
was copied. Regenerate (byte-identical with the same numpy/Pillow/pyarrow
versions; seed `{SEED}`) with:

```
python samples/make_samples.py
```

The script also prints the sanity-check numbers below and the total size.

## Files

| path | what |
| --- | --- |
| `make_samples.py` | the generator (stdlib + numpy + Pillow + pyarrow) |
| `mvsa/data/{{guid}}.jpg` | {sum(counts_l.values()) + sum(counts_u.values())} images, {W}x{H} JPEG, quality {JPEG_QUALITY} |
| `mvsa/data/{{guid}}.txt` | one tweet text per guid (one line + newline) |
| `mvsa/train.txt` | MVSA label file: header `guid,tag`, {sum(counts_l.values())} labelled rows, shuffled |
| `mvsa/test_without_label.txt` | header `guid,tag`, {sum(counts_u.values())} rows with tag `null` |
| `train.csv`, `train.parquet` | columns `guid,text,image,label` for the {sum(counts_l.values())} labelled rows (same order as `mvsa/train.txt`); `image` is relative to this folder (`mvsa/data/syn12.jpg`), so images are not stored twice; `guid` is a string |
| `tweets.parquet` | batch-scoring input: columns `guid,text,image,user` (`user` = fake pass-through column); the {sum(counts_u.values())} unlabelled rows, then {len(bad_rows)} deliberately bad rows (below) |
| `bad/` | broken image files used by the bad rows (`truncated.jpg` opens, but fails on decode) |

guids are `syn` + an integer drawn without replacement from 1..5199: the prefix keeps these synthetic files from ever being mistaken for (or colliding with) real MVSA tweets, whose files are named by bare numbers.

### Label counts

| label | labelled (train) | unlabelled (hidden, not written) |
| --- | ---: | ---: |
""" + "".join("| %s | %d | %d |\n" % (lab, counts_l[lab], counts_u[lab]) for lab in LABELS) + f"""| total | {sum(counts_l.values())} | {sum(counts_u.values())} |

### Deliberate oddities in the MVSA folder

- cp1252-encoded texts (not valid UTF-8: `é`, curly quotes, dashes): guids {', '.join(map(sample_id, s(cp1252_guids)))}.
  In `train.csv`/`train.parquet` their text is stored decoded.
- texts containing UTF-8 emoji: {n_emoji_files} files, always including guids {', '.join(map(sample_id, s(emoji_guids)))}.
- grayscale (mode `L`) JPEGs: guids {', '.join(map(sample_id, s(gray_guids)))}.
- CMYK JPEG: guid {', '.join(map(sample_id, s(cmyk_guids)))}.
- Text noise: `RT @user:` prefixes, @mentions, #hashtags (some CamelCase, e.g. `#BestDayEver`),
  `http://t.co/...` URLs, a few emoticons and emoji.
- All other texts are plain UTF-8 (mostly ASCII).

`train.csv` is UTF-8 with a header; pandas infers `guid` as an integer there, while the
Parquet files store it as a string. The `label` values are `positive`, `neutral`, `negative`.

### Bad rows at the end of `tweets.parquet`

| guid | image | problem |
| --- | --- | --- |
{bad_lines}

## Signal

About {int(P_TEXT_CARRIES * 100)}% of texts use their label's words (positive: love, great, amazing, so proud...;
negative: hate, awful, worst, disgrace...; neutral: factual phrasing such as meeting, report,
schedule, update, at the station); the rest are neutral-sounding, mixed or contradictory.
About {int(P_IMAGE_CARRIES * 100)}% of images are drawn in their label's style (positive: warm yellow/orange,
circles and a smiley; negative: dark blue-grey, jagged lines and crosses; neutral: mid greys,
rectangles); the rest are either washed out towards grey (ambiguous) or drawn in another
label's style. Text and image noise are drawn independently (exactly 75% carriers per label in
each modality, shuffled separately), so the modalities complement each other.

Trivial rules on the {sum(counts_l.values())} labelled rows (numpy only, computed by the script):

| rule | accuracy |
| --- | ---: |
| chance (uniform) | 33.3% |
| majority class | {100 * majority:.1f}% |
| keyword lookup (text only) | {100 * acc_text:.1f}% |
| mean colour, nearest hand-set prototype (image only) | {100 * acc_img:.1f}% |
| fusion: keyword rule if it finds polar words, else colour rule | {100 * acc_fus:.1f}% |

These are tiny samples for tests and demos, not a benchmark.
"""
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
