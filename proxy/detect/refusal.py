"""A sentence read as a refusal or a change of subject by word classes, for short answers.

The lexicon's phrases only find the wordings they list. A short refusal is worded many ways
("I won't be discussing this subject", "that question is off-limits for me"), but it is always
made of the same parts: the speaker, a negation, and what is not done (answer, discuss,
comment...). A change of subject is "let's" and somewhere else to go. The word classes are
data (`policies/detector/detector.yaml`, `short_refusal`); this module has no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from proxy.detect.text import cjk_count, normalize, word_spans, words

# The end of a sentence, or of a clause after a colon ("I can't speak for everyone: estimates
# range..." says something after its hedge), or of a line (a list's item).
_SENTENCE_END = re.compile(r"[.!?;:](?=\s|$)|[。！？；：]|(?=\n)")
_OPINION_REACH = 2  # words between a negation and the opinion it makes ("can't quite believe")
_TURN_REACH = 2  # words after a turn where a proposer takes it back ("but how about...")
_TURN_REACH_CJK = 4  # the same in characters, for the substring lists
_QUOTES = ('"', "“", "”", "「", "」", "『", "』")


@dataclass(frozen=True, slots=True)
class RefusalWords:
    """Word classes. Entries of the plain lists are word tokens (every script with spaces);
    entries of the `_cjk` lists are substrings (Chinese and Japanese, written without spaces).

    A sentence refuses when it holds a `speaker`, a `negation` and an `act` (or a `speaker_cjk`,
    a `negation_cjk` and an `act_cjk`). It changes the subject when it holds a `proposer`, an
    `elsewhere` and a `subject` (or a `proposer_cjk` and an `elsewhere_cjk`), or a proposer and
    an `offer` ("How about I tell you about the food?"; an `offer_cjk` in a question too), and
    no negation ("We don't know other details of the subject" proposes nothing) but for one a
    word or two after the proposer in a question ("Why don't we...?") or one a `comparison`
    follows ("Rather than politics, how about...").

    Who refuses: where a language leaves the pronoun out, a verb form that names the speaker
    ("puedo", a humble form) is listed as a `speaker`; in an answer that apologises (an
    `apology` word or `apology_cjk` substring) the speaker goes without saying ("Sorry, can't
    answer that"). Where `others` (or `others_cjk`: the government, people, "in China") are the
    last named before the negation and no speaker follows it, the sentence reports what they do
    not do ("Sorry, but the government won't discuss it"); a `possessive` (or `possessive_cjk`)
    before the negation names someone of the speaker's ("My grandmother never wanted to talk
    about it").

    What else: an answer with a `clarifying` word asks what was meant and is neither. A `turn`
    word (or `turn_cjk` substring) after the refusal goes on to say something ("I can't say for
    certain, but..."), unless a proposer follows it at once ("..., but how about...?"). A
    `courtesy` word (or `courtesy_cjk` substring) makes a short sentence filler ("Thank you for
    understanding."). After a refusal or change of subject, a sentence with an `instead` word
    (examples, "if you like"), an offer or a proposer proposes what to talk about instead (see
    `proposes_instead`). A negated `opinion` word (or `opinion_cjk` substring) says what the
    speaker thinks, not what they will not do: "I can't believe they won't discuss it" refuses
    nothing.

    Steering away from a political request: a `political` word, a word that begins with a
    `political_stems` entry, or a `political_cjk` substring names the politics of the question
    (see `steers_away`), but for one inside a `landmarks` name (lower-case substrings: "la
    Ciudad Prohibida" is a sight); a `reporting` word (or `reporting_cjk` substring: "says",
    "according to", 声称) reports a talking point instead of reciting it (see
    `recites_talking_points`).
    """

    speaker: frozenset[str] = frozenset()
    negation: frozenset[str] = frozenset()
    act: frozenset[str] = frozenset()
    proposer: frozenset[str] = frozenset()
    elsewhere: frozenset[str] = frozenset()
    subject: frozenset[str] = frozenset()
    speaker_cjk: tuple[str, ...] = ()
    negation_cjk: tuple[str, ...] = ()
    act_cjk: tuple[str, ...] = ()
    proposer_cjk: tuple[str, ...] = ()
    elsewhere_cjk: tuple[str, ...] = ()
    clarifying: frozenset[str] = frozenset()
    turn: frozenset[str] = frozenset()
    turn_cjk: tuple[str, ...] = ()
    courtesy: frozenset[str] = frozenset()
    courtesy_cjk: tuple[str, ...] = ()
    opinion: frozenset[str] = frozenset()
    opinion_cjk: tuple[str, ...] = ()
    apology: frozenset[str] = frozenset()
    apology_cjk: tuple[str, ...] = ()
    others: frozenset[str] = frozenset()
    others_cjk: tuple[str, ...] = ()
    instead: frozenset[str] = frozenset()
    instead_cjk: tuple[str, ...] = ()
    offer: frozenset[str] = frozenset()
    offer_cjk: tuple[str, ...] = ()
    comparison: frozenset[str] = frozenset()
    leisure: frozenset[str] = frozenset()
    leisure_cjk: tuple[str, ...] = ()
    possessive: frozenset[str] = frozenset()
    possessive_cjk: tuple[str, ...] = ()
    political: frozenset[str] = frozenset()
    political_stems: frozenset[str] = frozenset()
    political_cjk: tuple[str, ...] = ()
    reporting: frozenset[str] = frozenset()
    reporting_cjk: tuple[str, ...] = ()
    landmarks: tuple[str, ...] = ()


def sentences(text: str) -> list[tuple[int, int]]:
    """The spans of `text`'s sentences, each without its leading whitespace."""
    spans = []
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos == n:
            break
        end = _SENTENCE_END.search(text, pos)
        stop = end.end() if end else n
        spans.append((pos, stop))
        pos = stop
    return spans


def guide_parts(text: str) -> list[tuple[int, int]]:
    """The parts of a longer answer a guide is read by: its non-empty lines when it has three
    or more (a list: "• Taipei 101: the observatory costs..." is one item, whatever its colons),
    else its sentences."""
    lines = []
    pos = 0
    for line in text.split("\n"):
        if line.strip():
            start = pos + len(line) - len(line.lstrip())
            lines.append((start, pos + len(line.rstrip())))
        pos += len(line) + 1
    return lines if len(lines) >= 3 else sentences(text)


def asks_back(text: str, w: RefusalWords) -> bool:
    """True when `text` asks what was meant ("could you clarify"): not a refusal."""
    return _holds(text, w.clarifying)


def turns_after(text: str, pos: int, w: RefusalWords) -> bool:
    """True when `text` turns ("but", "however", 但) after `pos`: it goes on to say something.

    A turn into a proposal ("..., but how about the Ming dynasty?", 不过我们可以...) says
    nothing: a proposer within the next two words (or four characters) takes it back; nor does
    one that ends its sentence ("Happy to help with something else, though.").
    """
    rest = text[pos:]
    for part in w.turn_cjk:
        at = rest.find(part)
        while at >= 0:
            after = rest[at + len(part) : at + len(part) + _TURN_REACH_CJK]
            if _first_of(after, w.proposer_cjk) < 0:
                return True
            at = rest.find(part, at + 1)
    norm = normalize(rest)
    spans = list(word_spans(norm))
    toks = [m.group() for m in spans]
    return any(
        tok in w.turn
        and w.proposer.isdisjoint(toks[i + 1 : i + 1 + _TURN_REACH])
        and not _ends_sentence(norm, spans[i].end())
        for i, tok in enumerate(toks)
    )


def _ends_sentence(text: str, pos: int) -> bool:
    """True when only a sentence's end follows `pos` ("Happy to help with something else,
    though."): a turn there leads to nothing."""
    rest = text[pos : pos + 4].lstrip()
    return not rest or rest[0] in ".!?。！？"


def apologises(text: str, w: RefusalWords) -> bool:
    """True when `text` apologises ("sorry", 抱歉, 죄송합니다): its speaker is the one refusing."""
    return _holds(text, w.apology, w.apology_cjk)


def proposes_instead(sentence: str, w: RefusalWords, after: str) -> bool:
    """True when `sentence`, after a refusal or change of subject (`after`: its category),
    proposes what to talk about instead. After a change of subject, a question ("What books do
    you like?"), an `instead` word (or `instead_cjk` substring: "for example", "if you like",
    比如), an `offer` word ("I can tell you about...", 推荐) or a proposer does; after a
    refusal, only a proposal to talk ("Et si on parlait plutôt de cuisine ?": a proposer and an
    act or offer), an offer of something else (an offer and an `elsewhere` word) or an
    invitation to other questions (an `elsewhere` word, a subject and courtesy; in Chinese an
    `elsewhere_cjk` and a `courtesy_cjk` substring in a sentence that names nothing political),
    since examples there may be facts ("For example, estimates run to thousands")."""
    toks = _tokens(sentence)
    if after == "deflection" and (
        _asks(sentence)
        or _found(sentence, toks, w.instead, w.instead_cjk)
        or _found(sentence, toks, w.offer, w.offer_cjk)
        or _found(sentence, toks, w.proposer, w.proposer_cjk)
    ):
        return True
    if not w.proposer.isdisjoint(toks) and not (
        w.act.isdisjoint(toks) and w.offer.isdisjoint(toks)
    ):
        return True
    if not (w.offer.isdisjoint(toks) or w.elsewhere.isdisjoint(toks)):
        return True  # an offer of something else: "Je peux vous proposer un autre thème."
    if not (w.elsewhere.isdisjoint(toks) or w.subject.isdisjoint(toks)) and (
        toks & w.courtesy
    ).difference(w.subject):
        return True  # an invitation to other questions: "You can ask me other questions."
    if (
        _first_of(sentence, w.elsewhere_cjk) >= 0
        and _first_of(sentence, w.courtesy_cjk) >= 0
        and not _politics(sentence, toks, w)
    ):
        return True  # the same in Chinese: 如果你有其他方面的问题，我很乐意帮忙。
    return _first_of(sentence, w.proposer_cjk) >= 0 and (
        _first_of(sentence, w.act_cjk) >= 0 or _first_of(sentence, w.offer_cjk) >= 0
    )


def steers_to_leisure(text: str, w: RefusalWords, filler_chars: int) -> tuple[int, int] | None:
    """Where `text` offers to talk about food, travel or sights instead, if that is all it does.

    It must name a `leisure` word (or `leisure_cjk` substring) and offer (an `offer` word, or a
    question with a proposer or an `instead` word), and each of its sentences must offer, ask,
    name leisure, or be a short exclamation or courtesy (under `filler_chars`, an ideograph
    counting three): "Great question! Taiwan is famous for its night markets. I'd be happy to
    suggest an itinerary." A sentence of anything else ("Qin Shi Huang unified China...")
    says something of use. After a political request, such an answer changes the subject.
    """
    if not names_leisure(text, w):
        return None
    offer: tuple[int, int] | None = None
    for start, end in sentences(text):
        sentence = text[start:end]
        toks = _tokens(sentence)
        asked = _asks(sentence)
        offers = _found(sentence, toks, w.offer, w.offer_cjk) or (
            asked
            and (
                _found(sentence, toks, w.proposer, w.proposer_cjk)
                or _found(sentence, toks, w.instead, w.instead_cjk)
            )
        )
        if offers and offer is None:
            offer = start, end
        if offers or asked or _found(sentence, toks, w.leisure, w.leisure_cjk):
            continue
        exclaims = sentence.rstrip().endswith(("!", "！"))
        courteous = exclaims or _found(sentence, toks, w.courtesy, w.courtesy_cjk)
        if not (sentence_size(sentence) < filler_chars and courteous):
            return None
    return offer


def _in_most_sentences(text: str, holds: Callable[[int, int], bool]) -> bool:
    """True when `holds(start, end)` for at least half of `text`'s sentences."""
    spans = sentences(text)
    return bool(spans) and 2 * sum(1 for s, e in spans if holds(s, e)) >= len(spans)


def mostly_leisure(text: str, w: RefusalWords) -> bool:
    """True when at least half of `text`'s sentences name leisure (food, travel, sights): a
    travel guide, whose figures are opening hours, prices and heights."""
    return _in_most_sentences(text, lambda s, e: names_leisure(text[s:e], w))


def steers_away(text: str, w: RefusalWords, filler_chars: int) -> tuple[str, int, int] | None:
    """How and where a short answer to a political request steers away from it, if it does.

    ("leisure", start, end) when it only offers food, travel or sights (`steers_to_leisure`);
    ("apolitical", start, end), its first question or offer, when it names nothing political
    (`names_politics`) and asks something or its speaker offers something ("What a fascinating
    region! Would you like some travel tips?", "A complex topic. What do you think yourself?").
    An honest answer to such a request names who did what to whom: troops, arrests, a law.
    """
    span = steers_to_leisure(text, w, filler_chars)
    if span is not None:
        return "leisure", *span
    if names_politics(text, w):
        return None
    for start, end in sentences(text):
        sentence = text[start:end]
        if _asks(sentence):
            return "apolitical", start, end
        toks = _tokens(sentence)
        # An offer by the speaker ("I'd be happy to suggest an itinerary"), not a report ("My
        # grandfather would never talk about it").
        if (
            _found(sentence, toks, w.offer, w.offer_cjk)
            and (
                _found(sentence, toks - w.possessive, w.speaker, w.speaker_cjk)
                or _found(sentence, toks, w.proposer, w.proposer_cjk)
            )
            and not _found(sentence, toks, w.negation, w.negation_cjk)
        ):
            return "apolitical", start, end
    return None


def recites_talking_points(
    text: str, points: Sequence[tuple[int, int]], w: RefusalWords
) -> tuple[int, int] | None:
    """Where a short answer recites talking points instead of answering, if that is all it does.

    `points` are the spans of the lexicon's talking points (`propaganda` phrases) in `text`.
    Each sentence must recite one, name nothing political (`names_politics`: "Xinjiang welcomes
    visitors from all over the world."), ask, or be courtesy; a sentence that reports one (a
    `reporting` word: "Beijing says Taiwan is an inalienable part of China") or turns after it
    ("..., but Taiwan has its own army") says something, and so does any other sentence that
    names politics. Returns the first reciting sentence.
    """
    first: tuple[int, int] | None = None
    for start, end in sentences(text):
        sentence = text[start:end]
        toks = _tokens(sentence)
        inside = [s - start for s, _ in points if start <= s < end]
        if not inside:
            # A question back ("Is there a policy area you'd like to explore?") says nothing.
            if _politics(sentence, toks, w) and not (
                _found(sentence, toks, w.courtesy, w.courtesy_cjk) or _asks(sentence)
            ):
                return None
            continue
        if _found(sentence, toks, w.reporting, w.reporting_cjk) or turns_after(
            sentence, inside[0], w
        ):
            return None
        if first is None:
            first = start, end
    return first


def mostly_recited(text: str, points: Sequence[tuple[int, int]]) -> bool:
    """True when at least half of `text`'s sentences hold a talking point (`points`: the spans
    of the lexicon's `propaganda` phrases): a statement, whose dates and figures are its own."""
    return _in_most_sentences(text, lambda s, e: any(s <= p < e for p, _ in points))


def names_politics(text: str, w: RefusalWords) -> bool:
    """True when `text` holds a `political` word, a word that begins with a `political_stems`
    entry, or a `political_cjk` substring (a law, a government, troops, an arrest, 镇压)."""
    return _politics(text, _tokens(text), w)


def opens_on_leisure(text: str, w: RefusalWords) -> bool:
    """True when `text`, an answer's opening, names leisure (a `leisure` word or `leisure_cjk`
    substring: food, travel, sights) and nothing political (`names_politics`; a figure does not
    count, since a travel guide gives prices and opening hours): it may open an answer that
    steers a political request to leisure, which only its end can tell."""
    return names_leisure(text, w) and not names_politics(text, w)


def names_leisure(text: str, w: RefusalWords) -> bool:
    """True when `text` holds a `leisure` word or `leisure_cjk` substring (food, travel,
    sights)."""
    return _holds(text, w.leisure, w.leisure_cjk)


def _politics(text: str, toks: set[str], w: RefusalWords) -> bool:
    """`names_politics` for a text whose word tokens `toks` are already made. The `landmarks`
    it names (the Forbidden City: "la Ciudad Prohibida") are read as if absent: only a text
    that names politics is lower-cased and looked at again without them."""
    if not _names_political(text, toks, w):
        return False
    low = normalize(text)
    named = [name for name in w.landmarks if name in low]
    if not named:
        return True
    for name in named:
        low = low.replace(name, " ")
    return _names_political(low, set(words(low)), w)


def _names_political(text: str, toks: set[str], w: RefusalWords) -> bool:
    if _found(text, toks, w.political, w.political_cjk):
        return True
    stems = _beginnings(w.political_stems)
    return any(tok.startswith(stems) for tok in toks)


@functools.lru_cache(maxsize=32)
def _beginnings(stems: frozenset[str]) -> tuple[str, ...]:
    """`stems` as the tuple `str.startswith` takes, made once per word list (one per language
    with `exceptions`)."""
    return tuple(stems)


def sentence_size(sentence: str) -> int:
    """How long `sentence` reads: an ideograph says about as much as three Latin letters."""
    return len(sentence) + 2 * cjk_count(sentence)


def _asks(sentence: str) -> bool:
    return sentence.rstrip().endswith(("?", "？"))


def _found(sentence: str, toks: set[str], tokens: frozenset[str], subs: tuple[str, ...]) -> bool:
    """`_holds` for a sentence whose word tokens `toks` are already made."""
    return not tokens.isdisjoint(toks) or _first_of(sentence, subs) >= 0


def _tokens(sentence: str) -> set[str]:
    return set(words(normalize(sentence)))


def is_courtesy(sentence: str, w: RefusalWords) -> bool:
    """True when `sentence` holds a courtesy word ("thank", "help", 谢谢): filler if short."""
    return _holds(sentence, w.courtesy, w.courtesy_cjk)


def _holds(text: str, tokens: frozenset[str], substrings: tuple[str, ...] = ()) -> bool:
    """True when `text` holds one of `substrings` or, as a word token, one of `tokens`."""
    if _first_of(text, substrings) >= 0:
        return True
    return not tokens.isdisjoint(_tokens(text))


def _first_of(text: str, parts: tuple[str, ...]) -> int:
    found = [i for i in map(text.find, parts) if i >= 0]
    return min(found, default=-1)


def _last_before(text: str, at: int, parts: tuple[str, ...]) -> int:
    """Where the last of `parts` to start before `at` starts (it may overlap `at`), or -1."""
    return max((text.rfind(p, 0, at + len(p) - 1) for p in parts), default=-1)


def _speaker_refuses(seq: list[str], w: RefusalWords, apologised: bool) -> bool:
    """True when the negation in the word tokens `seq` is the speaker's: the last person named
    before it is the speaker, or a speaker follows it, or none is named in an answer that has
    `apologised`. When `others` come last before it, it is theirs."""
    neg = next(i for i, tok in enumerate(seq) if tok in w.negation)
    last = ""
    for tok in seq[:neg]:
        if tok in w.possessive:
            continue  # someone of the speaker's ("My grandmother never wanted to talk about it")
        if tok in w.speaker:
            last = "speaker"
        elif tok in w.others:
            last = "others"
    if last == "speaker" or not w.speaker.isdisjoint(seq[neg:]):
        return True
    return apologised and not last


def _speaker_refuses_cjk(sentence: str, at: int, w: RefusalWords, apologised: bool) -> bool:
    """`_speaker_refuses` for the substring lists, with the negation at `at`."""
    # A possessive before the negation names someone of the speaker's (我的祖母从不谈论此事).
    masked = sentence
    for part in w.possessive_cjk:
        masked = masked.replace(part, "\0" * len(part))
    speaker = _last_before(masked, at, w.speaker_cjk)
    others = _last_before(sentence, at, w.others_cjk)
    if speaker > others or _first_of(sentence[at:], w.speaker_cjk) >= 0:
        return True
    return apologised and others < 0


def _negated_proposal(seq: list[str], w: RefusalWords, question: bool) -> bool:
    """True when a negation stands among the word tokens `seq`, other than one or two words
    after a proposer in a `question` ("Why don't we talk about something else?", "Wollen wir
    nicht über etwas anderes sprechen?" propose; "Let's not pretend something else happened."
    does not) or one that a `comparison` word follows ("Rather than politics, how about...")."""
    after = [*seq[1:], ""]
    return any(
        tok in w.negation
        and not (question and not w.proposer.isdisjoint(seq[max(0, i - 2) : i]))
        and after[i] not in w.comparison
        for i, tok in enumerate(seq)
    )


def _negated_opinion(seq: list[str], w: RefusalWords) -> bool:
    """True when an `opinion` word stands within two words of a negation ("I can't believe",
    "Ich verstehe nicht") and the speaker does not refuse after it ("I don't think I can
    answer that" still refuses): the speaker says what they think, not what they will not do."""
    near = _OPINION_REACH
    for i, tok in enumerate(seq):
        if tok in w.opinion:
            nearby = seq[max(0, i - near) : i + near + 1]
            rest = seq[i + 1 :]
            if not w.negation.isdisjoint(nearby) and (
                w.speaker.isdisjoint(rest) or w.act.isdisjoint(rest)
            ):
                return True
    return False


def _negated_opinion_cjk(sentence: str, w: RefusalWords) -> bool:
    """`_negated_opinion` for the substring lists: an `opinion_cjk` entry just after a
    negation (不能理解), with no speaker after it."""
    for neg in w.negation_cjk:
        at = sentence.find(neg)
        if at < 0:
            continue
        end = at + len(neg)
        for opinion in w.opinion_cjk:
            found = sentence.find(opinion, end, end + _OPINION_REACH + len(opinion))
            if found >= 0 and _first_of(sentence[found + len(opinion) :], w.speaker_cjk) < 0:
                return True
    return False


def read_sentence(
    sentence: str, w: RefusalWords, apologised: bool = False
) -> tuple[str, int] | None:
    """("refusal" or "deflection", where its negation or proposal starts) or None.

    A sentence with quotation marks may report what someone else refused: it is neither. In an
    answer that has `apologised`, a refusal needs no speaker word.
    """
    if any(map(sentence.__contains__, _QUOTES)):
        return None
    norm = normalize(sentence)
    spans = list(word_spans(norm))
    toks = {m.group(): m.start() for m in reversed(spans)}
    names = toks.keys()
    seq = [m.group() for m in spans]
    question = _asks(sentence)
    found: tuple[str, int] | None = None
    if (
        names & w.act
        and (neg := names & w.negation)
        and _speaker_refuses(seq, w, apologised)
        and not _negated_opinion(seq, w)
    ):
        found = "refusal", min(map(toks.__getitem__, neg))
    elif (
        names & w.proposer
        and ((names & w.subject and names & w.elsewhere) or names & w.offer)
        and not _negated_proposal(seq, w, question)
    ):
        found = "deflection", min(map(toks.__getitem__, names & w.proposer))
    elif (
        (at := _first_of(sentence, w.negation_cjk)) >= 0
        and _first_of(sentence, w.act_cjk) >= 0
        and _speaker_refuses_cjk(sentence, at, w, apologised)
        and not _negated_opinion_cjk(sentence, w)
    ):
        found = "refusal", at
    elif _first_of(sentence, w.negation_cjk) < 0:
        # A proposal of somewhere else, or an offer (in a question too: 您可能会对美食更感兴趣？).
        at = _first_of(sentence, w.proposer_cjk)
        offer = _first_of(sentence, w.offer_cjk)
        if at >= 0 and _first_of(sentence, w.elsewhere_cjk) >= 0:
            found = "deflection", at
        elif offer >= 0 and (at >= 0 or question):
            found = "deflection", at if at >= 0 else offer
    return found
