"""The shipped detector: hard rules for provider blocks and empty answers, then the scorer."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import Any

from proxy.detect import native as _native
from proxy.detect.categorize import categorize, explain
from proxy.detect.features import AnswerView, Extracted, GramWeights, Windows, extract
from proxy.detect.language import LanguageWords, name_language
from proxy.detect.lexicon import Lexicon, PhraseHit
from proxy.detect.model import Scorer, sigmoid
from proxy.detect.refusal import (
    RefusalWords,
    apologises,
    asks_back,
    guide_parts,
    is_courtesy,
    mostly_leisure,
    mostly_recited,
    names_leisure,
    names_politics,
    opens_on_leisure,
    proposes_instead,
    read_sentence,
    recites_talking_points,
    sentence_size,
    sentences,
    steers_away,
    turns_after,
)
from proxy.detect.request import Request, RequestWords, names_any, read_request, user_texts
from proxy.detect.stream import CandorStreamJudge
from proxy.detect.text import program_words, read_language, split_think, words
from proxy.detect.topics import TopicIndex
from proxy.detect.verdict import Category, Exchange, ProviderError, Signal, Status, Verdict


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Hold-back bounds for streams, in characters of visible answer.

    `window`: text held before the first decision. `max_hold_chars`: the most held before the
    judge must settle (the proxy bounds the hold in time on its own).
    """

    window: int = 240
    max_hold_chars: int = 1200


@dataclass(frozen=True, slots=True)
class GarbleSettings:
    """When an answer the scorer let pass is garbled text: a non-answer, not censorship.

    An answer to a political request whose first `window` characters hold at least `min_words`
    program identifiers (snake_case, camelCase) in prose, outside any code, is token soup from a
    degenerating model. `min_words: 0` turns the rule off.
    """

    min_words: int = 3
    window: int = 2400


@dataclass(frozen=True, slots=True)
class ShortRefusalSettings:
    """When a short answer is a refusal or a change of subject, whatever the score.

    A finished answer under `max_chars` characters whose every sentence refuses, changes the
    subject, or is filler (under `filler_chars`, an ideograph counting three, and with a
    courtesy word: "Thank you for understanding.") or, after one of those, proposes what to talk
    about instead (under `instead_chars`: "How about the Great Wall, for example?"; see
    `proposes_instead`), and that gives no figure (but for an answer that only offers leisure
    to a political request and names nothing political), does not turn after its refusal ("but",
    "however") and does not ask what was meant, says nothing else: the scorer, which learnt
    from longer answers, can leave a reworded one under its threshold.
    `max_chars: 0` turns the rule off. The readings of an answer that steers away from a
    political request (`_steered`) also read answers up to `steer_chars` (an ideograph counting
    three; 0: no longer than `max_chars`), and a travel guide given to one up to `guide_chars`
    (`_long_guide`; 0: off). `exceptions`: by language, the words of a class of
    `RefusalWords` that are other words there (in Italian the speaker "i" is an article: "I
    giornali non potevano parlarne"; in Portuguese the turn "mais" means "more").
    """

    max_chars: int = 300
    steer_chars: int = 600
    guide_chars: int = 1800
    filler_chars: int = 60
    instead_chars: int = 160
    words: RefusalWords = field(default_factory=RefusalWords)
    exceptions: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DetectorParts:
    """Everything the detector is built from; the offline loader reads it from `policies/`."""

    lexicon: Lexicon
    topics: TopicIndex
    request_words: RequestWords = field(default_factory=RequestWords)
    windows: Windows = field(default_factory=Windows)
    scorer: Scorer = field(default_factory=Scorer)
    stream: StreamSettings = field(default_factory=StreamSettings)
    garble: GarbleSettings = field(default_factory=GarbleSettings)
    short_refusal: ShortRefusalSettings = field(default_factory=ShortRefusalSettings)
    languages: LanguageWords = field(default_factory=LanguageWords)
    # Earlier user messages searched for the conversation's topics when the last names none
    # (or only a place).
    topic_turns: int = 3


def _talking_points(ex: Extracted) -> list[tuple[int, int]]:
    """The spans of the lexicon's talking points (`propaganda` phrases) among `ex`'s hits."""
    return [(h.start, h.end) for h in ex.hits if h.category == Category.PROPAGANDA.value]


def _travel_guide(visible: str, offset: int, w: RefusalWords) -> tuple[Category, Signal] | None:
    """A short answer to a political request that names nothing political (the caller has
    seen to it) and names leisure in most of its sentences, two or more, read as a travel
    guide that steers away even with no offer at its end ("Tibet is stunning in summer. Lake
    Namtso sits at 4,718 metres... In Lhasa, try the yak butter tea."); one sentence that names
    tickets may be a fact."""
    spans = [(s, e) for s, e in sentences(visible) if names_leisure(visible[s:e], w)]
    if len(spans) < 2:
        return None
    return _short(Category.DEFLECTION, "travel_guide", *spans[0], visible=visible, offset=offset)


def _recited(span: tuple[int, int], visible: str, offset: int) -> tuple[Category, Signal]:
    return _short(Category.PROPAGANDA, "talking_points", *span, visible=visible, offset=offset)


def _short(
    category: Category, name: str, start: int, end: int, *, visible: str, offset: int
) -> tuple[Category, Signal]:
    """A short answer's reading: its category and the `short:` signal on the span that told."""
    return category, Signal("short:" + name, 1.0, offset + start, offset + end, visible[start:end])


def _blocked(reason: str, text: str, req: Request, lang: str) -> Verdict:
    return Verdict(
        status=Status.CENSORED,
        score=1.0,
        category=Category.PROVIDER_BLOCK,
        topics=req.conversation_topics,
        language=lang,
        signals=(Signal(name=reason, weight=1.0, text=text),),
    )


def _is_json(text: str) -> bool:
    if not text or text[0] not in "{[":
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # a model can nest brackets past the parser's stack
        return False
    return True


# A refusing sentence: its category, what found it (a lexicon rule or the word classes), the
# span shown, and where a turn ("but...") would start to say something else.
_Cue = tuple[Category, str, int, int, int]


def _refusing(
    hits: Sequence[PhraseHit],
    text: str,
    start: int,
    end: int,
    words: RefusalWords,
    apologised: bool,
) -> _Cue | None:
    """How the sentence `text[start:end]` refuses or changes the subject, if it does (in an
    answer that has `apologised` or not)."""
    inside = [h for h in hits if start <= h.start < end]
    for category in (Category.REFUSAL, Category.DEFLECTION):
        for hit in inside:
            if hit.category == category.value:
                return category, hit.rule, hit.start, hit.end, hit.end
    read = read_sentence(text[start:end], words, apologised)
    if read is None:
        return None
    kind, at = read
    category = Category.REFUSAL if kind == "refusal" else Category.DEFLECTION
    return category, kind + "_words", start + at, end, start + at


_GARBLED_SHOWN = 3  # identifiers shown as the signals of a garbled answer
# A number in an answer, and in the request it answers.
_NUMBER = re.compile(r"\d+")
# The short-answer readings of an answer that steers away from a political request.
_STEERED = frozenset(
    {"short:leisure", "short:apolitical", "short:travel_guide", "short:talking_points"}
)
_CACHED_REQUESTS = 256
_CACHED_PROMPT_CHARS = 4096


class CandorDetector:
    """Judges whole answers and opens incremental judges (see `proxy.detect.stream`)."""

    def __init__(self, parts: DetectorParts, native: bool = True) -> None:
        """`native`: sum gram weights with the C extension when it is built (the same figures)."""
        self.parts = parts
        self.native = native
        self._gram_weights = GramWeights.of(parts.scorer.whole.weights, native)
        self._early_gram_weights = GramWeights.of(parts.scorer.early.weights, native)
        # The language guess tokenizes with the C extension too when it sums the weights.
        self._tokenize = _native.words if self._gram_weights.native is not None else words
        # The proxy reads a request's topics before asking the model and again when judging
        # its answer: remember the last few reads (short prompts only, to bound memory).
        self._requests: dict[str, Request] = {}
        # The short-answer rule's words for each language where some words mean something else.
        rule = parts.short_refusal
        self._refusal_words = {
            lang: dataclasses.replace(
                rule.words,
                **{cls: getattr(rule.words, cls) - gone for cls, gone in classes.items()},
            )
            for lang, classes in rule.exceptions.items()
        }

    def with_stream(
        self, window: int | None = None, max_hold_chars: int | None = None
    ) -> CandorDetector:
        """The same detector with other hold-back bounds (the caller's configuration)."""
        current = self.parts.stream
        stream = StreamSettings(
            window=current.window if window is None else window,
            max_hold_chars=current.max_hold_chars if max_hold_chars is None else max_hold_chars,
        )
        return CandorDetector(dataclasses.replace(self.parts, stream=stream), self.native)

    def request(self, messages: Sequence[Mapping[str, Any]]) -> Request:
        """Read the request the answer responds to: the last user message, and when it names
        no topic or only a place (`only_places`), the topics of the nearest of the `topic_turns`
        user messages before it that names any (the conversation's, for a follow-up such as
        "How many died?" or "Did China hide anything?"). A message that moves on takes none
        (see `_moves_on`)."""
        texts = user_texts(messages)
        req = self._read(next(texts, ""))
        if (req.topics and not req.only_places) or self._moves_on(req):
            return req
        economy = req.asks_economy
        for earlier in islice(texts, self.parts.topic_turns):
            read = self._read(earlier)
            economy = economy or read.asks_economy
            if read.topics:
                # The conversation's topics, and whether it asked about the economy on them.
                return dataclasses.replace(req, context_topics=read.topics, asks_economy=economy)
        return req

    def _moves_on(self, req: Request) -> bool:
        """True when a message says it leaves the conversation's subject ("Unrelated:", 换个话题:
        `moving_on`) and names nothing political ("Changing the subject, how many were
        arrested?" stays). An everyday question alone does not leave it: "Can tourists still
        visit the square where it happened?" is on it, and a refusal of it is political."""
        return req.moves_on and not names_politics(req.prompt, self.parts.short_refusal.words)

    def _read(self, prompt: str) -> Request:
        """One user message read (remembered when short)."""
        known = self._requests.get(prompt)
        if known is None:
            p = self.parts
            known = read_request(prompt, p.topics, p.request_words)
            if len(prompt) <= _CACHED_PROMPT_CHARS:
                if len(self._requests) >= _CACHED_REQUESTS:
                    del self._requests[next(iter(self._requests))]
                self._requests[prompt] = known
        return known

    @property
    def native_sums(self) -> bool:
        """True when gram weights are summed by the C extension (`proxy.detect.native`)."""
        return self._gram_weights.native is not None

    @property
    def topic_names(self) -> tuple[str, ...]:
        """Every topic the detector knows (bounded label values for metrics)."""
        return tuple(t.name for t in self.parts.topics.topics)

    def request_topics(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
        """The political topics of a request (its conversation's, for a follow-up), before any
        answer (for pre-emptive routing)."""
        return self.request(messages).conversation_topics

    def judge(self, exchange: Exchange) -> Verdict:
        """The whole-answer verdict."""
        return self.judge_parts(
            self.request(exchange.messages),
            exchange.answer,
            reasoning_chars=-1 if exchange.reasoning is None else len(exchange.reasoning.strip()),
            finish_reason=exchange.finish_reason,
            provider_error=exchange.provider_error,
            has_tool_calls=exchange.has_tool_calls,
            wants_json=exchange.wants_json,
        )

    def judge_parts(
        self,
        req: Request,
        answer: str,
        *,
        reasoning_chars: int = -1,
        finish_reason: str | None = None,
        provider_error: ProviderError | None = None,
        has_tool_calls: bool = False,
        wants_json: bool = False,
    ) -> Verdict:
        """The whole-answer verdict from an already read request (shared with streams)."""
        # A stream may only learn of tool calls from its finish reason.
        has_tool_calls = has_tool_calls or finish_reason in ("tool_calls", "function_call")
        split = split_think(answer)
        body = split.visible.strip()
        # The scorer's language class, and the finer name the verdict gives.
        lang, toks = read_language(body, self._tokenize)
        named = name_language(body, lang, toks, self.parts.languages)
        if provider_error is not None:
            code = provider_error.code or str(provider_error.status)
            return _blocked("provider_error", code, req, named)
        if finish_reason == "content_filter":
            return _blocked("finish_content_filter", "content_filter", req, named)
        if not body:
            if has_tool_calls:
                return Verdict(Status.CLEAN, 0.0, topics=req.conversation_topics, language=named)
            if split.state in ("unclosed", "closed") or reasoning_chars > 0:
                return Verdict(
                    Status.CENSORED,
                    1.0,
                    Category.NON_ANSWER,
                    req.conversation_topics,
                    named,
                    (Signal(name="reasoning_only", weight=1.0, start=0, end=len(answer)),),
                )
            return _blocked("empty_answer", "", req, named)
        if (wants_json or has_tool_calls) and _is_json(body):
            return Verdict(Status.CLEAN, 0.0, topics=req.conversation_topics, language=named)
        view = AnswerView(
            visible=split.visible,
            ended=True,
            think_state=split.state,
            think_chars=len(split.think),
            reasoning_chars=reasoning_chars,
            finish_reason=finish_reason,
        )
        p = self.parts
        ex = extract(view, req, p.lexicon, p.windows, lang, self._gram_weights)
        model = p.scorer.whole
        ngram = self._gram_weights.head_sum(ex.grams) + ex.weighed
        terms = model.terms(ex.meta)
        score = sigmoid(model.bias + sum(map(itemgetter(1), terms)) + ngram)
        signals = explain(ex, model, terms, split.visible, split.offset, ngram)
        # A short refusal is one whatever the score (and named so when the score flags it too).
        short = None
        political: bool | None = None  # whether it answers a political request, once read
        rule = p.short_refusal
        if rule.max_chars and len(body) < max(rule.max_chars, rule.steer_chars):
            political = self._political(req, body)
            short = self._short_refusal(
                ex, split.visible, split.offset, named, political, req.prompt
            )
        censored = score >= p.scorer.thresholds.flag
        # An answer read as steering away (`_steered`) is named so only when the scorer does not
        # flag it too: the scorer's category reads more of it ("I may not write that. Can I help
        # with anything else?" is a refusal).
        if short is not None and not (censored and short[1].name in _STEERED):
            category, signal = short
            return Verdict(
                Status.CENSORED, 1.0, category, req.conversation_topics, named, (signal, *signals)
            )
        # Longer answers that steer a political request away (a travel guide, a lecture on the
        # economy), up to `guide_chars` (a longer answer's length alone says so, at no cost).
        guide_chars = rule.guide_chars
        if (
            not censored
            and short is None
            and req.conversation_topics
            and len(body) < guide_chars
            and (size := sentence_size(body)) < guide_chars
            and (self._political(req, body) if political is None else political)
        ):
            instead = self._long_guide(split.visible, split.offset, named, size)
            instead = instead or self._lecture(split.visible, split.offset, req, body)
            if instead is not None:
                return Verdict(
                    Status.CENSORED,
                    1.0,
                    Category.DEFLECTION,
                    req.conversation_topics,
                    named,
                    (instead, *signals),
                )
        if not censored and req.topics:
            garbled = self._garbled(split.visible, split.offset, req, named)
            if garbled is not None:
                return garbled
        return Verdict(
            status=Status.CENSORED if censored else Status.CLEAN,
            score=score,
            category=categorize(ex, req, view) if censored else Category.NONE,
            topics=req.conversation_topics,
            language=named,
            signals=signals,
        )

    def _political(self, req: Request, body: str) -> bool:
        """Whether a short answer `body` (under `steer_chars`) answers a political request.

        A request is one when it has topics of its own, unless it is an everyday one
        (`asks_everyday`: what to eat in Beijing, a hiking trail in Hong Kong) or only a place
        named them (`only_places`: "Does Wuhan have good street breakfast?") and it names nothing
        political. A follow-up in a conversation on some topics (`context_topics`) is one when
        it names something political itself ("Do they still arrest people for it?"), or when
        the answer names a topic ("Tiananmen Square is lovely at dawn. Want some tips?"), other
        than by a place the follow-up named ("Is Beijing cold in winter?"): a user who moves on
        to a recipe gets an answer that names none.
        """
        plain = (req.asks_everyday or req.only_places) and not names_politics(
            req.prompt, self.parts.short_refusal.words
        )
        if req.topics and not plain:
            return True
        if plain and req.asks_everyday:
            return False
        if not req.context_topics:
            return False
        if names_politics(req.prompt, self.parts.short_refusal.words):
            return True
        found, only_places = self.parts.topics.read(body)
        # After a message that named a place itself, the answer may name it back.
        return bool(found) and not (only_places and req.topics)

    def _short_refusal(
        self,
        ex: Extracted,
        visible: str,
        offset: int,
        language: str,
        political: bool,
        prompt: str = "",
    ) -> tuple[Category, Signal] | None:
        """A short answer (in the named `language`) made only of refusals, changes of subject
        and short filler (`ShortRefusalSettings`), or, to a `political` request, one that steers
        away from it or only recites talking points (`_steered`). A number the request (`prompt`)
        holds is no figure the answer gives ("I'd rather not discuss what happened in 1989.")."""
        rule = self.parts.short_refusal
        w = self._refusal_words.get(language, rule.words)
        body = visible.strip()
        # A figure is a fact given: the answer says more than its refusal. With one, or
        # longer, only the readings of an answer to a political request that steers away from
        # it apply (`_figured`, `_steered`), up to `steer_chars` (an ideograph, which says more,
        # counting three).
        figured = any(map(str.isdigit, body))
        if figured and prompt:
            # The year or count the question asked about is no fact the answer gives.
            asked = set(_NUMBER.findall(prompt))
            figured = any(n not in asked for n in _NUMBER.findall(body))
        if figured or len(body) >= rule.max_chars:
            if not political or sentence_size(body) >= rule.steer_chars:
                return None
            if figured:
                return self._figured(ex, visible, offset, w)
            return self._steered(ex, visible, offset, w, political)
        if asks_back(body, w):
            return None
        cue: _Cue | None = None
        apologised = apologises(body, w)
        for start, end in sentences(visible):
            found = _refusing(ex.hits, visible, start, end, w, apologised)
            if found is None:
                sentence = visible[start:end]
                size = sentence_size(sentence)
                # Filler: a short courtesy, or a proposal of what to talk about instead.
                filler = size < rule.filler_chars and is_courtesy(sentence, w)
                if not filler and not (
                    cue is not None
                    and size < rule.instead_chars
                    and proposes_instead(sentence, w, cue[0].value)
                ):
                    # A sentence that says something else: the answer may still steer away.
                    return self._steered(ex, visible, offset, w, political)
            elif cue is None or (cue[0] is Category.DEFLECTION and found[0] is Category.REFUSAL):
                cue = found
        if cue is None:
            # Only filler ("Thanks for asking! Anything else I can help with?").
            return self._steered(ex, visible, offset, w, political)
        if turns_after(visible, cue[4], w):
            return None
        return _short(*cue[:4], visible=visible, offset=offset)

    def _long_guide(self, visible: str, offset: int, language: str, size: int) -> Signal | None:
        """A travel guide too long for the short readings (from `steer_chars` to
        `guide_chars`) given to a political request (the caller has seen to that and to the
        upper bound): it names nothing political and names leisure in most of its parts, three
        or more (`guide_parts`: its lines when it is a list, else its sentences: "Tibet is one
        of the most breathtaking places you can visit! Here's a quick guide to Lhasa: • Potala
        Palace:...")."""
        rule = self.parts.short_refusal
        if size < rule.steer_chars:
            return None
        w = self._refusal_words.get(language, rule.words)
        if names_politics(visible, w):
            return None
        parts = guide_parts(visible)
        # Nothing political is named, so a part that names leisure opens on it.
        leisure = [(s, e) for s, e in parts if names_leisure(visible[s:e], w)]
        if len(leisure) < 3 or 2 * len(leisure) < len(parts):
            return None
        s, e = leisure[0]
        return Signal("long:travel_guide", 1.0, offset + s, offset + e, visible[s:e])

    def _lecture(self, visible: str, offset: int, req: Request, body: str) -> Signal | None:
        """An answer to a political request (the caller has seen to it, and to `guide_chars`)
        that never asked about the economy (nor did the conversation it follows) which lectures
        on it instead: it gives
        figures, at least half of its sentences, two or more, name the economy
        (`request_words.economy`: "Tibet's GDP reached 239 billion yuan in 2023..."), and the
        others name nothing political."""
        if req.asks_economy or not any(map(str.isdigit, body)):
            return None
        economy = self.parts.request_words.economy
        w = self.parts.short_refusal.words
        spans = sentences(visible)
        named = [(s, e) for s, e in spans if names_any(economy, visible[s:e])]
        if len(named) < 2 or 2 * len(named) < len(spans):
            return None
        # A sentence that names politics and not the economy answers something ("The famine
        # came of the policy, not of the weather.").
        if any(names_politics(visible[s:e], w) for s, e in spans if (s, e) not in named):
            return None
        s, e = named[0]
        return Signal("lecture:economy", 1.0, offset + s, offset + e, visible[s:e])

    def _figured(
        self, ex: Extracted, visible: str, offset: int, w: RefusalWords
    ) -> tuple[Category, Signal] | None:
        """A short answer to a political request that gives figures, read only as a statement
        that recites talking points in at least half its sentences (its dates are its own:
        "...the peaceful liberation of 1951...") or as a travel guide that steers away: one that
        names nothing political and names leisure in at least half its sentences (its figures
        are ticket prices and opening hours), with an offer or a question at its end
        (`steers_away`) or in two sentences or more (`_travel_guide`)."""
        points = _talking_points(ex)
        if points and mostly_recited(visible, points):
            recited = recites_talking_points(visible, points, w)
            if recited is None:
                return None
            return _recited(recited, visible, offset)
        if names_politics(visible, w) or not mostly_leisure(visible, w):
            return None
        steered = steers_away(visible, w, self.parts.short_refusal.filler_chars)
        if steered is None:
            return _travel_guide(visible, offset, w)
        return _short(Category.DEFLECTION, *steered, visible=visible, offset=offset)

    def _steered(
        self, ex: Extracted, visible: str, offset: int, w: RefusalWords, political: bool
    ) -> tuple[Category, Signal] | None:
        """A short answer to a `political` request that steers away from it (`steers_away`),
        is a travel guide (`_travel_guide`) or only recites talking points
        (`recites_talking_points`)."""
        if not political:
            return None
        steered = steers_away(visible, w, self.parts.short_refusal.filler_chars)
        if steered is not None:
            return _short(Category.DEFLECTION, *steered, visible=visible, offset=offset)
        if not names_politics(visible, w) and mostly_leisure(visible, w):
            return _travel_guide(visible, offset, w)
        points = _talking_points(ex)
        recited = recites_talking_points(visible, points, w) if points else None
        if recited is None:
            return None
        return _recited(recited, visible, offset)

    def _garbled(self, visible: str, offset: int, req: Request, lang: str) -> Verdict | None:
        rule = self.parts.garble
        if not rule.min_words:
            return None
        text = visible[: rule.window]
        if "```" in text:
            return None
        spans = program_words(text, rule.min_words, _GARBLED_SHOWN)
        if not spans:
            return None
        signals = tuple(
            Signal("garbled", 1.0, offset + start, offset + end, text[start:end])
            for start, end in spans[:_GARBLED_SHOWN]
        )
        return Verdict(
            Status.CENSORED, 1.0, Category.NON_ANSWER, req.conversation_topics, lang, signals
        )

    def early_score(
        self, req: Request, visible: str, think_state: str, reasoning_chars: int
    ) -> tuple[float, Verdict]:
        """The first-window probability and the verdict to stop with if it is high enough."""
        p = self.parts
        view = AnswerView(
            visible=visible,
            ended=False,
            think_state=think_state,
            reasoning_chars=reasoning_chars,
        )
        weights = self._early_gram_weights
        ex = extract(view, req, p.lexicon, Windows.opening(p.stream.window), "", weights)
        model = p.scorer.early
        ngram = weights.head_sum(ex.grams) + ex.weighed
        terms = model.terms(ex.meta)
        score = sigmoid(model.bias + sum(map(itemgetter(1), terms)) + ngram)
        verdict = Verdict(
            status=Status.CENSORED,
            score=score,
            category=categorize(ex, req, view),
            topics=req.conversation_topics,
            language=name_language(visible, *read_language(visible, self._tokenize), p.languages),
            signals=explain(ex, model, terms, visible, 0, ngram),
        )
        return score, verdict

    def may_steer(self, req: Request, opening: str) -> bool:
        """Whether a stream's first window may open an answer that steers a political request
        to leisure ("Xinjiang is a fascinating region! Kashgar's old town is famous for its
        lamb skewers..."), which the readings of `_steered` and `_long_guide` tell only at its
        end: the request has topics and the opening names leisure and says nothing else
        (`opens_on_leisure`). The stream holds such an answer until it says something
        (`says_more`) or reaches `guide_chars` (`steer_chars` if that is longer)."""
        rule = self.parts.short_refusal
        if not (rule.max_chars and rule.steer_chars and req.conversation_topics):
            return False
        return opens_on_leisure(opening, rule.words)

    def says_more(self, text: str) -> bool:
        """Whether `text`, more of an answer held by `may_steer`, names something political:
        then it is no answer that steers away."""
        return names_politics(text, self.parts.short_refusal.words)

    def open_stream(self, exchange: Exchange) -> CandorStreamJudge:
        """An incremental judge for one streamed answer."""
        return CandorStreamJudge(self, exchange)
