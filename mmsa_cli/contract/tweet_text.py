"""Tweet text normalization: what the text looks like when it reaches the tokenizer.

`ModelConfig.text_normalization` (`mmsa train --text-normalization`) names one of NORMALIZERS.
The name is saved in the run's config.json and in the exported model's manifest.json, and
every place where text meets the tokenizer (training, evaluate/predict, export parity,
scoring) calls `normalizer(name)`: training and serving cannot disagree.

"tweet" rewrites, in this order (each step is one small function below):

  1. HTML entities (&amp; &lt; &gt; &quot; &#39; ...) are unescaped.
  2. A leading retweet prefix `RT @user:` is removed.
  3. URLs (http://, https://, www., t.co/, and Twitter's truncated `http:/…`, `htt…`) are
     removed. Not replaced by a word: on MVSA nearly every link is the tweet's own t.co
     link to the picture (the other modality), present whatever the sentiment; as random
     characters it cost the 64-token budget 10+ word pieces, and a constant "url" word would
     carry no more information than its absence.
  4. ASCII emoticons become words: :) -> smile, :D xD -> laugh, :( -> sad, ;) -> wink,
     <3 -> love, :P -> tongue, :* -> kiss, :'( -> cry, :o -> surprise, :/ -> annoyed.
  5. Emoji become their CLDR names (the `emoji` package's table): "😂" -> "face with tears
     of joy"; a run of the same emoji keeps two. MiniLM's (bert-base-uncased's) WordPiece
     vocabulary has no emoji, so without this every emoji is [UNK]. © ® ™ stay: in MVSA
     they are mostly pieces of mis-decoded East Asian text, not emoji.
  6. @mentions become "@user" (who is mentioned is not sentiment, and rare handles split
     into many pieces).
  7. Hashtags lose the '#' and are split at CamelCase, acronym, digit and '_' boundaries:
     #HappyFriday -> "Happy Friday", #BLFTerrorCamp2 -> "BLF Terror Camp 2", #happyfriday stays
     "happyfriday" (no boundary to split at).
  8. A letter, '!' or '?' repeated 3+ times is cut to two: "sooooo!!!!" -> "soo!!".
  9. Whitespace runs become one space.

Case is kept: the uncased tokenizer lowercases, a cased one would want it.

Measured on MVSA-Single's 4,000 labelled tweets with the default minilm-l6 tokenizer
(`mmsa_cli.models.text_encoders.minilm_dir()`), texts decoded as contract/text.py does
(UTF-8, else GB18030), "none" -> "tweet":
  [UNK] word pieces: 461 of 118,343 (0.390%) -> 460 of 73,401 (0.627%): the count barely
      moves and the share rises because 38% of all pieces are gone (URLs, RT prefixes,
      handles, hashtags' '#', repeats). MVSA's emoji were mostly lost as '?' when it was
      collected; the [UNK]s left are in 68 texts, most of them Japanese, whose kana and
      rarer kanji are not in bert-base-uncased's vocabulary. No rule here can repair that.
  texts longer than max_length 64 (with [CLS] and [SEP]), i.e. truncated: 49 -> 12.
  texts that become empty (nothing but links and the RT prefix): 0 -> 43.
On live tweets, whose emoji survive, each emoji is one [UNK] with "none".
Cost: about 25 us a tweet on one CPU core (emoji only scanned in texts that may hold one).
"""
from __future__ import annotations

import html
import re
from typing import Callable, Sequence

import emoji

from ..errors import ConfigError
from .text import TEXT_NORMALIZATIONS

# --------------------------------------------------------------------------------------- entities

_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]{2,8});")


def unescape_entities(text: str) -> str:
    """&amp; -> &, &lt; -> <, &#39; -> ' ...; only complete entities (with ';'), so 'AT&T' stays."""
    return _ENTITY.sub(lambda m: html.unescape(m.group()), text)


# --------------------------------------------------------------------------------------- retweets

_RETWEET = re.compile(r"^\s*RT\s+@\w+\s*:\s*")


def strip_retweet_prefix(text: str) -> str:
    """'RT @user: text' -> 'text' (only at the start)."""
    return _RETWEET.sub("", text, count=1)


# --------------------------------------------------------------------------------------- URLs

# Twitter cuts long tweets with an ellipsis, often inside the final link: "http:/…", "htt…".
# In MVSA the ellipsis itself is often mis-decoded GBK: "¡\xad".
_ELLIPSIS = r"(?:…|\.\.\.|¡\xad)"
_URL = re.compile(
    r"(?<![\w@])(?:https?:/*[^\s]*|www\.[^\s]+|t\.co/[^\s]*"   # complete (or cut after the scheme)
    r"|h(?:t(?:t(?:ps?)?)?)?:?/{0,2}" + _ELLIPSIS + r"(?=\s*$))",  # cut inside "http" at the end
    re.IGNORECASE)


def remove_urls(text: str) -> str:
    return _URL.sub(" ", text)


# --------------------------------------------------------------------------------------- emoticons

EMOTICONS: dict[str, tuple[str, ...]] = {
    "smile": (":)", ":-)", "=)", ":]", "(:", "^^", "^_^", ":3"),
    "laugh": (":D", ":-D", "=D", "xD", "XD", "xd"),
    "sad": (":(", ":-(", "=(", ":[", "):"),
    "cry": (":'(", ":'-(", ";("),
    "wink": (";)", ";-)", ";D"),
    "love": ("<3", "<33", "<333"),
    "heartbroken": ("</3",),
    "tongue": (":P", ":-P", ":p", ":-p", ";P", ";p"),
    "kiss": (":*", ":-*"),
    "surprise": (":o", ":O", ":-o", ":-O"),
    "annoyed": (":/", ":-/", ":\\", ":|", ":-|"),
}
_EMOTICON_WORD = {e: word for word, faces in EMOTICONS.items() for e in faces}
# Stand-alone only: after start/space, before end/space/punctuation ("<3Tia" counts, "x:)" not).
_EMOTICON = re.compile(
    r"(?<!\S)(" + "|".join(re.escape(e) for e in sorted(_EMOTICON_WORD, key=len, reverse=True))
    + r")(?=$|[\s.,!?]|(?<=3)[A-Za-z])")


def emoticons_to_words(text: str) -> str:
    """':)' -> ' smile ', '<3' -> ' love ', ':D' -> ' laugh ' (see EMOTICONS)."""
    return _EMOTICON.sub(lambda m: f" {_EMOTICON_WORD[m.group(1)]} ", text)


# --------------------------------------------------------------------------------------- emoji

# Text-presentation symbols the emoji table lists but that, in MVSA, come from mis-decoded text.
_KEEP_SYMBOLS = frozenset("©®™")
MAX_EMOJI_RUN = 2
# Characters that can start (or, U+FE0F / U+20E3, complete) an emoji outside ASCII: a text with
# none of them skips the emoji package's slow per-character scan (~50 us a tweet). A set, not
# a regex class: sre searches a class of astral characters linearly.
_EMOJI_CHARS = frozenset({k[0] for k in emoji.EMOJI_DATA if not k[0].isascii()} - _KEEP_SYMBOLS
                         | {"\ufe0f", "\u20e3"})


def emoji_name(chars: str) -> str:
    """'😂' -> 'face with tears of joy'; '👍🏽' -> 'thumbs up medium skin tone'."""
    return emoji.demojize(chars, delimiters=(" ", " ")).replace("_", " ").strip()


def emoji_to_words(text: str) -> str:
    """Every emoji -> its English name between spaces; runs of one emoji keep MAX_EMOJI_RUN."""
    if text.isascii() or _EMOJI_CHARS.isdisjoint(text):  # fast path: most tweets
        return text
    out: list[str] = []
    last, run = None, 0
    for token in emoji.analyze(text, non_emoji=True, join_emoji=True):
        chars = token.chars
        if isinstance(token.value, emoji.EmojiMatch) and chars.rstrip("\ufe0e") not in _KEEP_SYMBOLS:
            run = run + 1 if chars == last else 1
            last = chars
            if run <= MAX_EMOJI_RUN:
                out.append(f" {emoji_name(chars)} ")
            continue
        if not chars.isspace():
            last, run = None, 0
        out.append(chars)
    return "".join(out)


# --------------------------------------------------------------------------------------- mentions

_MENTION = re.compile(r"(?<![\w@])@\w+")


def mask_mentions(text: str) -> str:
    """'@BarackObama' -> '@user'; e-mail addresses are left alone."""
    return _MENTION.sub("@user", text)


# --------------------------------------------------------------------------------------- hashtags

_HASHTAG = re.compile(r"(?<![\w#&])#(\w+)")
_WORD_BOUNDARY = re.compile(
    r"(?<=[a-z])(?=[A-Z])"            # happyFriday   -> happy|Friday
    r"|(?<=[A-Z])(?=[A-Z][a-z])"      # BLFTerror     -> BLF|Terror
    r"|(?<=[A-Za-z])(?=\d)"           # Baliye7       -> Baliye|7
    r"|(?<=\d)(?=[A-Za-z])")          # 500cu         -> 500|cu


def split_hashtag(tag: str) -> str:
    """'HappyFriday' -> 'Happy Friday'; 'land_yacht' -> 'land yacht'; 'happyfriday' unchanged."""
    words = tag.replace("_", " ")
    return " ".join(_WORD_BOUNDARY.sub(" ", words).split())


def hashtags_to_words(text: str) -> str:
    return _HASHTAG.sub(lambda m: split_hashtag(m.group(1)), text)


# --------------------------------------------------------------------------------------- repeats

_REPEAT = re.compile(r"([A-Za-z!?])\1{2,}")


def squeeze_repeats(text: str) -> str:
    """'soooo happy!!!!' -> 'soo happy!!' (ASCII letters, '!' and '?'; digits are numbers)."""
    return _REPEAT.sub(r"\1\1", text)


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------- the rule sets

TWEET_RULES: tuple[Callable[[str], str], ...] = (
    unescape_entities, strip_retweet_prefix, remove_urls, emoticons_to_words, emoji_to_words,
    mask_mentions, hashtags_to_words, squeeze_repeats, collapse_whitespace,
)


def normalize_tweet(text: str) -> str:
    for rule in TWEET_RULES:
        text = rule(text)
    return text


def _unchanged(text: str) -> str:
    return text


NORMALIZERS: dict[str, Callable[[str], str]] = {"none": _unchanged, "tweet": normalize_tweet}
assert tuple(NORMALIZERS) == TEXT_NORMALIZATIONS, "contract/text.py TEXT_NORMALIZATIONS is out of date"


def normalizer(how: str) -> Callable[[str], str]:
    """The function for a normalization name; an unknown name is a ConfigError."""
    try:
        return NORMALIZERS[how]
    except (KeyError, TypeError):
        raise ConfigError(f"text normalization {how!r} is not one of {', '.join(NORMALIZERS)}") from None


def normalize_text(text: str, how: str) -> str:
    """`text` as the tokenizer must see it under normalization `how` ("none" or "tweet")."""
    return normalizer(how)(text)


def normalize_texts(texts: Sequence[str], how: str) -> list[str]:
    """normalize_text over a list; the name is checked even when the list is empty."""
    fn = normalizer(how)
    return list(texts) if fn is _unchanged else [fn(t) for t in texts]
