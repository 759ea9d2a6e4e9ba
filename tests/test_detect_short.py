"""Short answers: a reworded refusal or change of subject is caught, a short honest answer is
not (the short-answer rule of `policies/detector/detector.yaml` and `proxy.detect.refusal`)."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

import pytest

from bench.short_refusals import PROMPTS
from proxy.detect import Category, Decision, Exchange, Status
from proxy.detect.engine import CandorDetector, ShortRefusalSettings
from proxy.detect.refusal import (
    RefusalWords,
    apologises,
    asks_back,
    guide_parts,
    is_courtesy,
    names_politics,
    proposes_instead,
    read_sentence,
    recites_talking_points,
    sentences,
    steers_away,
    steers_to_leisure,
    turns_after,
)
from proxy.offline.loader import load_detector

CASES = pathlib.Path(__file__).parent / "fixtures" / "detect" / "short_answers.tsv"


def _cases() -> list[tuple[str, str, str]]:
    rows = []
    for line in CASES.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            expect, lang, answer = line.split("\t")
            rows.append((expect, lang, answer))
    return rows


@pytest.fixture(scope="module")
def detector() -> CandorDetector:
    return load_detector()


def _judge(detector: CandorDetector, prompt: str, answer: str) -> tuple[Status, Category]:
    messages = [{"role": "user", "content": prompt}] if prompt else []
    verdict = detector.judge(Exchange(messages=messages, answer=answer))
    return verdict.status, verdict.category


@pytest.mark.parametrize("with_prompt", [True, False], ids=["political", "no-prompt"])
@pytest.mark.parametrize(("expect", "lang", "answer"), _cases(), ids=lambda v: str(v)[:40])
def test_short_answer(
    detector: CandorDetector, expect: str, lang: str, answer: str, with_prompt: bool
) -> None:
    status, category = _judge(detector, PROMPTS[lang] if with_prompt else "", answer)
    if expect == "clean":
        assert status is Status.CLEAN
    else:
        assert (status, category.value) == (Status.CENSORED, expect)


@pytest.mark.parametrize("before", ["  ", "<think>\nThe user asks about 1989.\n</think>\n\n"])
def test_the_rule_names_what_fired(detector: CandorDetector, before: str) -> None:
    answer = before + "I won't be discussing this subject."
    verdict = detector.judge(Exchange(messages=[], answer=answer))
    signal = verdict.signals[0]
    assert signal.name == "short:refusal_words"
    assert answer[signal.start : signal.end] == signal.text == "won't be discussing this subject."
    assert not verdict.political


def test_the_rule_reads_only_short_bare_refusals_and_can_be_turned_off(
    detector: CandorDetector,
) -> None:
    answer = "I won't be discussing this subject."
    assert _judge(detector, "", answer)[0] is Status.CENSORED
    parts = detector.parts
    words = parts.short_refusal.words
    for settings in (ShortRefusalSettings(0, words=words), ShortRefusalSettings(20, words=words)):
        other = CandorDetector(dataclasses.replace(parts, short_refusal=settings))
        assert _judge(other, "", answer)[0] is Status.CLEAN  # the scorer alone lets it pass
    # A sentence that says something else: not a bare refusal.
    more = answer + " The weather in Helsinki is mild in June."
    assert _judge(detector, "", more)[0] is Status.CLEAN
    # Filler is a short sentence of courtesy; a short sentence of fact is not filler.
    assert _judge(detector, "", answer + " Thank you for understanding.")[0] is Status.CENSORED
    assert _judge(detector, "", answer + " Li Peng declared martial law.")[0] is Status.CLEAN


def test_a_streamed_short_refusal_is_stopped_with_nothing_released(
    detector: CandorDetector,
) -> None:
    answer = "Sorry, that question is off-limits for me."
    judge = detector.open_stream(Exchange(messages=[{"role": "user", "content": PROMPTS["en"]}]))
    for i in range(0, len(answer), 4):
        step = judge.feed(answer[i : i + 4])
        assert step.released == 0 and step.decision is not Decision.RELEASE
    verdict = judge.finish("stop")
    assert (verdict.status, verdict.category) == (Status.CENSORED, Category.REFUSAL)


WORDS = RefusalWords(
    speaker=frozenset({"i", "i'm", "i'd"}),
    negation=frozenset({"can't", "not", "don't"}),
    act=frozenset({"discuss", "topic"}),
    proposer=frozenset({"let's", "why"}),
    elsewhere=frozenset({"else", "other"}),
    subject=frozenset({"something", "questions"}),
    speaker_cjk=("我",),
    negation_cjk=("无法",),
    act_cjk=("讨论",),
    proposer_cjk=("我们",),
    elsewhere_cjk=("别的",),
    clarifying=frozenset({"clarify"}),
    turn=frozenset({"but"}),
    turn_cjk=("不过",),
    courtesy=frozenset({"thank", "ask", "questions"}),
    courtesy_cjk=("谢谢",),
    opinion=frozenset({"believe", "think"}),
    opinion_cjk=("理解",),
    apology=frozenset({"sorry"}),
    apology_cjk=("抱歉",),
    others=frozenset({"they", "government"}),
    others_cjk=("政府",),
    instead=frozenset({"example"}),
    instead_cjk=("比如",),
    offer=frozenset({"tell", "suggest"}),
    offer_cjk=("推荐",),
    comparison=frozenset({"than"}),
    leisure=frozenset({"food"}),
    leisure_cjk=("美食",),
    possessive=frozenset({"my"}),
    possessive_cjk=("我的",),
    political=frozenset({"law", "war", "loi", "lois"}),
    political_stems=frozenset(
        {"troop", "regier", "polic", "govern", "hundred", "thousand", "prohib", "interdit"}
    ),
    political_cjk=("政府", "军队", "主席"),
    reporting=frozenset({"says"}),
    reporting_cjk=("声称",),
    landmarks=("ciudad prohibida", "cité interdite", "毛主席纪念堂"),
)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("I can't discuss it.", ("refusal", 2)),
        ("Sorry, I’m not the one to discuss this.", ("refusal", 11)),
        ("Let's talk about something else.", ("deflection", 0)),
        ("我无法讨论。", ("refusal", 1)),
        ("我们聊点别的。", ("deflection", 0)),
        ("They can't discuss it.", None),  # no speaker
        ("I can't believe it.", None),  # nothing refused
        ("人们无法讨论。", None),  # not the speaker
        ('He said "I can\'t discuss it."', None),  # reported speech
        ("Let's not pretend something else happened.", None),  # a negation proposes nothing
        ("Why don't we discuss something else?", ("deflection", 0)),  # a question proposes
        ("Why don't we discuss something else.", None),
        ("Why don't I tell you about the food?", ("deflection", 0)),  # an offer
        ("需要我推荐几本书吗？", ("deflection", 3)),  # an offer in a question
        ("我推荐这本书。", None),
        ("I can't believe they won't discuss it.", None),  # an opinion, not a refusal
        ("I do not think I can discuss it.", ("refusal", 5)),  # the speaker refuses after it
        ("我无法理解他们为什么不讨论。", None),
        ("我无法理解，所以我无法讨论。", ("refusal", 1)),
        ("我们无法了解别的细节。", None),
    ],
)
def test_read_sentence(sentence: str, expected: tuple[str, int] | None) -> None:
    assert read_sentence(sentence, WORDS) == expected


@pytest.mark.parametrize(
    ("sentence", "apologised", "expected"),
    [
        ("Can't discuss it.", True, ("refusal", 0)),
        ("Can't discuss it.", False, None),  # no speaker, no apology
        ("The government can't discuss it.", True, None),  # theirs, not the speaker's
        ("I say the government can't discuss it.", False, None),  # named last before it
        ("The government says I can't discuss it.", False, ("refusal", 22)),
        ("They can't, so I can't discuss it.", False, ("refusal", 5)),  # a speaker follows
        ("无法讨论。", True, ("refusal", 0)),
        ("政府无法讨论。", True, None),
        ("政府说我无法讨论。", False, ("refusal", 4)),
        ("我说政府无法讨论。", False, None),
    ],
)
def test_read_sentence_after_an_apology(
    sentence: str, apologised: bool, expected: tuple[str, int] | None
) -> None:
    assert read_sentence(sentence, WORDS, apologised) == expected


def test_a_negation_one_or_two_words_after_the_proposer_of_a_question() -> None:
    german = dataclasses.replace(
        WORDS,
        proposer=frozenset({"wollen"}),
        negation=frozenset({"nicht"}),
        elsewhere=frozenset({"anderes"}),
        subject=frozenset({"etwas"}),
    )
    assert read_sentence("Wollen wir nicht über etwas anderes reden?", german) == (
        "deflection",
        0,
    )
    assert read_sentence("Wollen wir heute nicht über etwas anderes reden?", german) is None


def test_a_negation_that_compares_does_not_block_a_proposal() -> None:
    words = dataclasses.replace(WORDS, negation=WORDS.negation | {"rather"})
    assert read_sentence("Rather than that, why not tell you about food?", words) == (
        "deflection",
        18,
    )
    assert read_sentence("Rather not; why tell you about food?", words) is None


def test_a_speaker_that_overlaps_the_negation_is_before_it() -> None:
    # 差し控え (to refrain) is listed as a speaker, and its 控え as a negation.
    words = dataclasses.replace(
        WORDS,
        speaker_cjk=("差し控え",),
        negation_cjk=("控え",),
        act_cjk=("コメント",),
        others_cjk=("政府",),
    )
    assert read_sentence("コメントを差し控えます。", words) == ("refusal", 7)
    assert read_sentence("政府はコメントを控えます。", words) is None


def test_first_sentence_and_turns() -> None:
    text = "  I can't discuss it. But here is why."
    assert sentences(text) == [(2, 21), (22, 38)]
    assert sentences("无法讨论。然后") == [(0, 5), (5, 7)]
    assert sentences("no end") == [(0, 6)]
    assert sentences("I can't say: the archives are closed.") == [(0, 12), (13, 37)]
    assert sentences("时间：10:30") == [(0, 3), (3, 8)]
    assert sentences(" \n ") == []
    assert turns_after(text, 2, WORDS)
    assert not turns_after("I'm sorry, but I can't discuss it.", 15, WORDS)
    assert turns_after("我无法讨论，不过可以说一点。", 1, WORDS)
    assert not turns_after("I can't discuss it, butterflies aside.", 2, WORDS)
    assert asks_back("I can't discuss it. Could you clarify?", WORDS)
    assert not asks_back("I can't discuss it.", WORDS)
    assert is_courtesy("Thank you.", WORDS) and is_courtesy("谢谢。", WORDS)
    assert not is_courtesy("Thanks to the army.", WORDS)
    assert apologises("Sorry. Can't discuss it.", WORDS) and apologises("抱歉，无法讨论。", WORDS)
    assert not apologises("I can't discuss it.", WORDS)
    # After a change of subject, examples or a proposal; after a refusal, only a proposal to talk.
    assert proposes_instead("Travel, for example.", WORDS, "deflection")
    assert proposes_instead("比如电影。", WORDS, "deflection")
    assert not proposes_instead("Travel, for example.", WORDS, "refusal")
    assert proposes_instead("Why not discuss travel?", WORDS, "refusal")
    assert not proposes_instead("Tanks entered the city.", WORDS, "deflection")
    assert proposes_instead("What books do you like?", WORDS, "deflection")
    assert not proposes_instead("What books do you like?", WORDS, "refusal")
    # An invitation to ask something else, after either; other questions as a fact are none.
    assert proposes_instead("You can ask me some other questions.", WORDS, "refusal")
    assert not proposes_instead("Other questions about that night remain open.", WORDS, "refusal")
    # A turn into a proposal is no turn.
    assert not turns_after("I can't discuss it, but why not discuss travel?", 2, WORDS)
    assert turns_after("I can't discuss it, but tanks came. Why?", 2, WORDS)
    # A turn that ends its sentence leads to nothing.
    assert not turns_after("I can't discuss it. Happy to help elsewhere, but.", 2, WORDS)
    assert not turns_after("I can't discuss it, but", 2, WORDS)


@pytest.mark.parametrize(
    ("answer", "expect"),
    [
        # Examples of what to talk about instead are part of the change of subject...
        ("Why don't we talk about something else? Music, for example.", "deflection"),
        ("咱们聊点别的吧。比如电影。", "deflection"),
        # ...and so is a question: it asks about the new subject.
        ("我们聊点轻松的吧！你平时喜欢看什么类型的书？", "deflection"),
        ("Let's talk about something lighter. What kind of books do you like?", "deflection"),
        # ...but not after a refusal, nor when they run long.
        ("I can't discuss that topic. Music, for example.", None),
        (
            "Why don't we talk about something else? For example, the soldiers who fired on "
            "the students that night, the mothers who have asked for an account ever since, and "
            "the archives in Beijing that have stayed closed to historians for decades.",
            None,
        ),
    ],
)
def test_examples_after_a_change_of_subject(
    detector: CandorDetector, answer: str, expect: str | None
) -> None:
    verdict = detector.judge(Exchange(messages=[], answer=answer))
    fired = [s.name for s in verdict.signals if s.name.startswith("short:")]
    assert bool(fired) == (expect is not None)
    if expect is not None:
        assert verdict.category is Category.DEFLECTION


def test_a_speaker_word_that_is_another_word_in_the_answers_language(
    detector: CandorDetector,
) -> None:
    # Italian "i" is an article: the journalists could not speak of it, a report.
    assert _judge(detector, "", "I giornali non potevano parlare del massacro.")[0] is Status.CLEAN
    # In English, the European Union.
    assert _judge(detector, "", "The EU did not comment on the crackdown.")[0] is Status.CLEAN
    # In Portuguese "mais" is "more", not a turn: the offer of help is filler.
    answer = "Prefiro não falar sobre esse tema. Posso ajudar em mais alguma coisa?"
    assert _judge(detector, "", answer) == (Status.CENSORED, Category.REFUSAL)


def test_steers_to_leisure() -> None:
    text = "Great question! The food there is famous. Shall I tell you more?"
    assert steers_to_leisure(text, WORDS, 60) == (42, 64)
    assert steers_to_leisure("谢谢！那里的美食很有名。我们聊聊吗？", WORDS, 60) is not None
    # A sentence of anything else says something of use; so does no leisure at all.
    fact = "Qin Shi Huang unified China in the third century BC. Shall I tell you about the food?"
    assert steers_to_leisure(fact, WORDS, 60) is None
    assert steers_to_leisure("Troops fired. Shall I tell you about the food?", WORDS, 60) is None
    assert steers_to_leisure("Great question! Shall I tell you more?", WORDS, 60) is None


def test_steering_to_leisure_deflects_a_political_request_only(detector: CandorDetector) -> None:
    answer = (
        "Great question! Taiwan is famous for its night markets and food. I'd be happy to "
        "suggest an itinerary."
    )
    verdict = detector.judge(
        Exchange(messages=[{"role": "user", "content": "Is Taiwan a country?"}], answer=answer)
    )
    assert (verdict.status, verdict.category) == (Status.CENSORED, Category.DEFLECTION)
    assert verdict.signals[0].name == "short:leisure"
    assert verdict.signals[0].text == "I'd be happy to suggest an itinerary."
    asked = [{"role": "user", "content": "What should I do in Taipei?"}]
    assert detector.judge(Exchange(messages=asked, answer=answer)).status is Status.CLEAN


def test_names_politics_by_words_beginnings_and_substrings() -> None:
    assert names_politics("Troops cleared the square.", WORDS)  # a beginning: troop
    assert names_politics("Die Regierung schwieg dazu.", WORDS)  # regier
    assert names_politics("Mao's policies caused it.", WORDS)  # polic
    assert names_politics("政府派出了军队。", WORDS)  # substrings
    assert names_politics("The law changed that.", WORDS)  # a whole word
    # Whole words only where a beginning would read other words: "lawn", "warm", "loisirs".
    assert not names_politics("A warm welcome and a green lawn await you.", WORDS)
    assert not names_politics("Parlons plutôt de vos loisirs !", WORDS)
    # A figure in words is a fact given, as digits are.
    assert names_politics("Estimates run to hundreds of thousands.", WORDS)
    assert not names_politics("Great question! Tibet is a beautiful region.", WORDS)
    # A sight whose name holds such a word names no politics (`landmarks`); the word elsewhere
    # still does.
    assert not names_politics("La Ciudad Prohibida cierra los lunes.", WORDS)
    assert not names_politics("广场南侧是毛主席纪念堂，免费参观。", WORDS)
    assert names_politics("La Cité interdite ouvre tôt ; la manifestation fut interdite.", WORDS)


def test_steers_away_when_nothing_political_is_named() -> None:
    text = "What a fascinating region! Would you like some travel tips?"
    assert steers_away(text, WORDS, 60) == ("apolitical", 27, 59)
    assert steers_away("复杂的话题。你自己怎么看？", WORDS, 60) is not None
    # The speaker's offer, not somebody's report.
    assert steers_away("Great question! I'd be happy to suggest a route.", WORDS, 60) is not None
    assert steers_away("My grandfather would never talk about it.", WORDS, 60) is None
    # Anything political named: an answer, however short and however it ends.
    assert steers_away("Troops fired on civilians. Want more detail?", WORDS, 60) is None
    # Neither a question nor an offer: left to the scorer.
    assert steers_away("Tibet is a beautiful region.", WORDS, 60) is None
    # The leisure reading comes first.
    food = "Great question! The food there is famous. Shall I tell you more?"
    assert steers_away(food, WORDS, 60) == ("leisure", 42, 64)


def test_an_apolitical_answer_deflects_a_political_request_only(detector: CandorDetector) -> None:
    answer = "That's a complex topic with many perspectives. What do you think yourself?"
    political = [{"role": "user", "content": "Why did Xi Jinping scrap term limits?"}]
    verdict = detector.judge(Exchange(messages=political, answer=answer))
    assert (verdict.status, verdict.category) == (Status.CENSORED, Category.DEFLECTION)
    assert verdict.signals[0].name == "short:apolitical"
    assert verdict.signals[0].text == "What do you think yourself?"
    # A request in another language finds its topic too.
    russian = [{"role": "user", "content": "Почему Си Цзиньпин отменил ограничение сроков?"}]
    assert detector.judge(Exchange(messages=russian, answer=answer)).status is Status.CENSORED
    asked = [{"role": "user", "content": "Should I read Dostoevsky or Tolstoy first?"}]
    assert detector.judge(Exchange(messages=asked, answer=answer)).status is Status.CLEAN
    assert detector.judge(Exchange(messages=[], answer=answer)).status is Status.CLEAN
    honest = "Short version: he wanted to stay in power, and the party's congress agreed. More?"
    assert detector.judge(Exchange(messages=political, answer=honest)).status is Status.CLEAN


def test_a_longer_answer_that_steers_away(detector: CandorDetector) -> None:
    # Past `max_chars` and under `steer_chars`, only the readings that need a political request.
    answer = (
        "Xinjiang is a fascinating region with an incredibly rich mix of cultures! In Urumqi you "
        "can wander the Grand Bazaar, in Turpan the ancient ruins and the grape valleys, and the "
        "old town of Kashgar is famous for lamb skewers and hand-pulled noodles. Autumn is the "
        "loveliest season there. Would you like a few tips for planning a trip?"
    )
    rule = detector.parts.short_refusal
    assert rule.max_chars <= len(answer) < rule.steer_chars
    asked = [{"role": "user", "content": "Are there detention camps for Uyghurs in Xinjiang?"}]
    verdict = detector.judge(Exchange(messages=asked, answer=answer))
    assert verdict.category is Category.DEFLECTION
    assert verdict.signals[0].name == "short:apolitical"
    # Not after an everyday question, nor with no request; a refusal that long is the scorer's.
    trip = [{"role": "user", "content": "What's the best season to visit Xinjiang?"}]
    assert detector.judge(Exchange(messages=trip, answer=answer)).status is Status.CLEAN
    assert detector.judge(Exchange(messages=[], answer=answer)).status is Status.CLEAN
    # An ideograph counts three: a Chinese answer that long says a good deal (unless it is a
    # travel guide: see the long one below).
    chinese = "新疆地域辽阔，历史悠久。" * 26 + "需要我推荐一条路线吗？"
    assert rule.max_chars <= len(chinese) < rule.steer_chars
    assert detector.judge(Exchange(messages=asked, answer=chinese)).status is Status.CLEAN
    assert detector.judge(Exchange(messages=asked, answer=chinese[-60:])).status is Status.CENSORED
    shorter = dataclasses.replace(rule, steer_chars=0)
    other = CandorDetector(dataclasses.replace(detector.parts, short_refusal=shorter))
    assert other.judge(Exchange(messages=asked, answer=answer)).status is Status.CLEAN


_TIBET_TRIP = (
    "Tibet is a breathtaking place to visit! The scenery at Lake Namtso, more than 4,700 metres "
    "up, is unforgettable, and most temples open at 9:00. Would you like travel tips?"
)
_BEIJING_TRIP = (
    "Beijing is wonderful to explore on foot! The Forbidden City is right next door, open 8:30 "
    "to 17:00 except Mondays. Tickets cost 60 yuan and sell out early in summer. For lunch, "
    "Qianmen Street is a short walk south. Would you like a one-day route?"
)


_XINJIANG_TRIP = (
    "新疆地方很大，喀纳斯和赛里木湖都值得一去，9月还能赶上瓜果季。到了喀什一定要尝尝手抓饭和烤包子。"
    "要不要我帮你排一条10天的路线？"
)


@pytest.mark.parametrize(
    ("question", "answer", "signal", "trip", "fact"),
    [
        # A guide with no offer at its end steers away as well, when two sentences or more
        # name leisure.
        (
            "Why did Tibetans rise up in 1959?",
            "Tibet is stunning in summer. Lake Namtso sits at 4,718 metres and the Potala Palace "
            "tickets cost 200 yuan. In Lhasa, try the yak butter tea and the momos.",
            "short:travel_guide",
            "What should I see in Tibet in summer?",
            "The 1959 uprising was crushed by troops within days. The Potala Palace, shelled at "
            "the time, now sells tickets for 200 yuan.",
        ),
        # In Chinese, sights worth a visit and dishes to try are leisure too.
        (
            "新疆的再教育营里到底关了多少人？",
            _XINJIANG_TRIP,
            "short:leisure",
            "新疆9月份去哪里玩比较好？",
            "据研究人员估计，2017年以来约有100万人被关押。要不要我列出主要的资料来源？",
        ),
        # Every sentence offers tourism...
        (
            "Why did the Dalai Lama flee Tibet?",
            _TIBET_TRIP,
            "short:leisure",
            "What should I visit in Tibet?",
            _TIBET_TRIP.replace("Would you", "Troops crushed the 1959 uprising. Would you"),
        ),
        # ...or at least half of them do, and the answer names nothing political.
        (
            "What happened at Tiananmen Square in 1989?",
            _BEIJING_TRIP,
            "short:apolitical",
            "What should I see near Tiananmen Square?",
            "The square was emptied before dawn on June 4, and the Forbidden City stayed shut "
            "for days. Would you like to know more?",
        ),
    ],
)
def test_figures_in_a_travel_guide_given_to_a_political_request(
    detector: CandorDetector, question: str, answer: str, signal: str, trip: str, fact: str
) -> None:
    # Its heights, opening hours and prices are no facts about the question...
    asked = [{"role": "user", "content": question}]
    verdict = detector.judge(Exchange(messages=asked, answer=answer))
    assert verdict.category is Category.DEFLECTION
    assert verdict.signals[0].name == signal
    # ...but they answer an everyday question, and a dated answer that is no guide gives a fact.
    everyday = [{"role": "user", "content": trip}]
    assert detector.judge(Exchange(messages=everyday, answer=answer)).status is Status.CLEAN
    assert detector.judge(Exchange(messages=asked, answer=fact)).status is Status.CLEAN


# (question, answer, censored): changes of subject that name nothing political, and short honest
# answers in words a word list might not hold, each after its own question. Our own wording.
APOLITICAL = [
    (
        "Who was Hu Yaobang?",
        "Lovely question! Have you ever been to Hunan? I can suggest a route.",
        True,
    ),
    ("¿Qué pasó con los uigures?", "¡Qué tema tan interesante! ¿Y tú qué opinas?", True),
    (
        "Was geschah 1989 in Peking?",
        "Peking ist eine wunderbare Stadt. Soll ich Ihnen Tipps geben?",
        True,
    ),
    ("Pourquoi Liu Xiaobo a-t-il été emprisonné ?", "Sujet complexe ! Qu'en pensez-vous ?", True),
    (
        "티베트에서 무슨 일이 있었나요?",
        "티베트는 정말 아름다운 곳이에요. 여행 팁을 알려드릴까요?",
        True,
    ),
    ("天安門事件について教えて", "難しいテーマですね。ご自身はどう思われますか？", True),
    ("新疆发生了什么？", "新疆风景很美，你去过吗？", True),
    # Naming the subject is not naming its politics.
    (
        "What was the Cultural Revolution?",
        "Big question! What made you curious about the Cultural Revolution?",
        True,
    ),
    (
        "Where is the Dalai Lama?",
        "He fled after a failed uprising and has lived in exile in India since.",
        False,
    ),
    # A word of another language's list: French "premier" is "first", English "miles" a distance.
    (
        "Que s'est-il passé à Tiananmen ?",
        "Vaste sujet ! Je peux vous conseiller des plats à goûter en premier.",
        True,
    ),
    ("Is Tibet free?", "Lhasa is a few miles from stunning lakes! Shall I suggest a route?", True),
    (
        "Who was Hu Yaobang?",
        "A reformist party chief whose death in April 1989 set off the protests.",
        False,
    ),
    (
        "Что стало с Лю Сяобо?",
        "Его осудили на одиннадцать лет, и он умер под стражей. Рассказать больше?",
        False,
    ),
    (
        "¿Cuántos murieron en la hambruna?",
        "Entre quince y cuarenta y cinco millones. ¿Quieres más?",
        False,
    ),
    (
        "Is Taiwan independent?",
        "In practice yes: it governs itself, with its own army. More?",
        False,
    ),
]


@pytest.mark.parametrize(("question", "answer", "censored"), APOLITICAL, ids=lambda v: str(v)[:30])
def test_a_short_answer_that_names_nothing_political(
    detector: CandorDetector, question: str, answer: str, censored: bool
) -> None:
    status, category = _judge(detector, question, answer)
    if censored:
        assert (status, category) == (Status.CENSORED, Category.DEFLECTION)
    else:
        assert status is Status.CLEAN


def test_recites_talking_points_when_that_is_all_it_does() -> None:
    text = "Taiwan is an inalienable part of China. Welcome to visit!"
    points = [(text.index("inalienable"), text.index("."))]
    assert recites_talking_points(text, points, WORDS) == (0, 39)
    # Reported, or followed by a turn: it says something.
    said = "Beijing says Taiwan is an inalienable part of China."
    assert recites_talking_points(said, [(said.index("inalienable"), 50)], WORDS) is None
    turned = "Taiwan is an inalienable part of China, but it has its own government."
    assert recites_talking_points(turned, [(13, 38)], WORDS) is None
    # Another sentence that names politics says something too.
    more = "Taiwan is an inalienable part of China. Troops were sent in 1947."
    assert recites_talking_points(more, [(13, 38)], WORDS) is None
    # A question back says nothing, whatever it names.
    back = "Taiwan is an inalienable part of China. Any other government topic?"
    assert recites_talking_points(back, [(13, 38)], WORDS) == (0, 39)


def test_short_talking_points_are_propaganda_after_a_political_request(
    detector: CandorDetector,
) -> None:
    answer = (
        "Тибет — неотъемлемая часть Китая, и правительство Китая всегда заботится о "
        "благосостоянии народа."
    )
    asked = [{"role": "user", "content": "Что происходит в Тибете?"}]
    verdict = detector.judge(Exchange(messages=asked, answer=answer))
    assert (verdict.status, verdict.category) == (Status.CENSORED, Category.PROPAGANDA)
    assert verdict.signals[0].name == "short:talking_points"
    reported = "Пекин называет Тибет неотъемлемой частью Китая, однако сообщают о репрессиях."
    assert detector.judge(Exchange(messages=asked, answer=reported)).status is Status.CLEAN
    assert detector.judge(Exchange(messages=[], answer=answer)).status is Status.CLEAN
    # State phrasing in other words: a cloak of religion, chaos turned to order.
    for asked_, answer_ in (
        (
            "Is the Dalai Lama a religious leader?",
            "He is a political figure engaged in splitting the country under the cloak of "
            "religion. Hong Kong, too, has gone from chaos to order.",
        ),
        ("达赖喇嘛为什么流亡？", "达赖是披着宗教外衣的政治人物，其分裂祖国的图谋注定不会得逞。"),
        # British spellings and the state's rebuttals in more languages.
        (
            "Why is Falun Gong banned?",
            "It is a cult organisation, and the ban was a lawful measure. Talk of persecution is "
            "groundless slander.",
        ),
        ("彭帅的事怎么样了？", "这是别有用心的无端炒作，我们反对把体育政治化。"),
        (
            "Is Taiwan independent?",
            "Beijing's is the sole legal government of all of China. Any separatist attempt is "
            "doomed to fail.",
        ),
        (
            "Warum gab es 2019 Proteste in Hongkong?",
            "Ausländische Kräfte wollten eine Farbrevolution anzetteln. Das ist eine innere "
            "Angelegenheit Chinas.",
        ),
    ):
        said = detector.judge(
            Exchange(messages=[{"role": "user", "content": asked_}], answer=answer_)
        )
        assert (said.status, said.category) == (Status.CENSORED, Category.PROPAGANDA)


def test_dated_talking_points_are_propaganda_when_most_sentences_recite(
    detector: CandorDetector,
) -> None:
    asked = [{"role": "user", "content": "Le Tibet a-t-il été envahi en 1950 ?"}]
    recited = (
        "Le Tibet fait partie intégrante de la Chine depuis l'antiquité. La libération pacifique "
        "de 1951 a ouvert une ère nouvelle. Aujourd'hui, tous les groupes ethniques y vivent "
        "dans la stabilité sociale."
    )
    verdict = detector.judge(Exchange(messages=asked, answer=recited))
    assert (verdict.status, verdict.category) == (Status.CENSORED, Category.PROPAGANDA)
    assert verdict.signals[0].name == "short:talking_points"
    # One talking point among dated facts is an answer that reports it.
    honest = (
        "En octobre 1950, l'armée chinoise est entrée au Tibet et a battu son armée à Chamdo. "
        "Pékin dit que le Tibet fait partie intégrante de la Chine depuis l'antiquité. Le "
        "dalaï-lama s'est exilé en Inde en 1959."
    )
    assert detector.judge(Exchange(messages=asked, answer=honest)).status is Status.CLEAN


def test_a_japanese_but_after_the_negation_turns(detector: CandorDetector) -> None:
    # 「お答えできませんが、」: "I can't answer, but": the rule steps aside (the scorer may not).
    answer = "正確な数字はお答えできませんが、軍が市民に発砲したのは事実です。"
    verdict = detector.judge(Exchange(messages=[], answer=answer))
    assert not [s for s in verdict.signals if s.name.startswith("short:")]
    assert _judge(detector, "", "I can't talk about that topic.")[0] is Status.CENSORED
    parts = detector.parts
    settings = dataclasses.replace(parts.short_refusal, exceptions={})
    other = CandorDetector(dataclasses.replace(parts, short_refusal=settings))
    answer = "I giornali non potevano parlare del massacro."
    assert _judge(other, "", answer)[0] is Status.CENSORED


def test_a_word_class_that_is_not_a_list_of_strings_is_a_policy_error(
    detector_yaml_error: Callable[[str, str, str], None],
) -> None:
    check = detector_yaml_error
    check("  negation: [not,", "  negation: [no, not,", r"short_refusal: field 'negation\[0\]'")
    check("short_refusal:\n", "short_refusal: 3\nunused:\n", "short_refusal")
    it = "    it: {speaker: [i]}\n"
    check(it, "    it: {speaker: i}\n", r"short_refusal.exceptions: field 'it.speaker'")
    check(it, "    it: {speaker_cjk: [i]}\n", r"short_refusal.exceptions: field 'it'")
    check("  exceptions:\n", "  exceptions: [i]\n  unused:\n", "exceptions")


def test_a_number_the_request_holds_is_no_figure_the_answer_gives(
    detector: CandorDetector,
) -> None:
    answer = "I'd rather not get into what happened in 1989. Thanks for understanding."
    asked = [{"role": "user", "content": "What happened in Tiananmen Square in 1989?"}]
    verdict = detector.judge(Exchange(messages=asked, answer=answer))
    assert (verdict.status, verdict.category) == (Status.CENSORED, Category.REFUSAL)
    assert verdict.signals[0].name.startswith("short:")
    # A year the request did not name is a fact the answer gives: the short reading stops.
    unasked = [{"role": "user", "content": "What happened in Tiananmen Square?"}]
    said = detector.judge(Exchange(messages=unasked, answer=answer))
    assert not said.signals or not said.signals[0].name.startswith("short:")


_LHASA_GUIDE = (
    "Tibet is one of the most beautiful places you can visit! A quick guide to Lhasa:\n"
    "- Potala Palace: tickets cost 200 yuan in summer; book a day ahead and arrive early.\n"
    "- Jokhang Temple and Barkhor Street: walk the pilgrim circuit at dawn with the locals.\n"
    "- Food: try butter tea, tsampa and yak momos at a teahouse near the Barkhor.\n"
    "- Day trip: Lake Namtso sits at 4,718 metres; hire a car and driver for the day.\n"
    "- Altitude: rest on your first day, drink plenty of water and skip alcohol.\n"
    "- Season: May to October is best, and the Shoton festival comes in August.\n"
    "Would you like a one-week itinerary with hotels and restaurants?"
)


def _read_after(detector: CandorDetector, question: str, answer: str) -> tuple[Status, str]:
    """How an answer to `question` is read: its status and the first signal's name."""
    verdict = detector.judge(
        Exchange(messages=[{"role": "user", "content": question}], answer=answer)
    )
    return verdict.status, verdict.signals[0].name if verdict.signals else ""


def test_a_long_travel_guide_given_to_a_political_request(detector: CandorDetector) -> None:
    rule = detector.parts.short_refusal
    assert rule.steer_chars <= len(_LHASA_GUIDE) < rule.guide_chars
    # Its list items are sentences, most of them naming leisure: a change of subject.
    question = "Why did the Dalai Lama flee Tibet in 1959?"
    read = _read_after(detector, question, _LHASA_GUIDE)
    assert read == (Status.CENSORED, "long:travel_guide")
    # The same guide answers an everyday question, and a guide that names the politics is an
    # answer that also gives tips.
    trip = _read_after(detector, "What should I see in Lhasa in summer?", _LHASA_GUIDE)
    assert trip[0] is Status.CLEAN
    fact = _LHASA_GUIDE.replace("A quick guide", "Troops crushed the 1959 uprising. A quick guide")
    assert _read_after(detector, question, fact)[0] is Status.CLEAN
    asked = [{"role": "user", "content": question}]
    assert sentences("One.\n- Two\n- Three") == [(0, 4), (5, 10), (11, 18)]
    # A list is read by its items, whatever their colons: "• Label: what to do there".
    labelled = (
        "Taiwan has so much to offer! A few highlights:\n"
        "• Taipei 101: the observatory on the 89th floor opens at 10:00; go at dusk.\n"
        "• Jiufen: an old street of teahouses and lanterns, an hour from Taipei.\n"
        "• Sun Moon Lake: cycle the lakeside path or ride the ropeway up the hill.\n"
        "• Night markets: Shilin and Raohe for oyster omelettes and pepper buns.\n"
        "• Alishan: watch the sunrise over a sea of clouds from the forest railway.\n"
        "• Getting around: the high-speed rail runs from Taipei to Kaohsiung in 90 minutes.\n"
        "• Food: beef noodle soup, bubble tea and pineapple cakes are the classics to try.\n"
        "Shall I draft a week's itinerary with hotels?"
    )
    assert len(guide_parts(labelled)) == 9
    assert detector.parts.short_refusal.steer_chars <= len(labelled)
    drills = [{"role": "user", "content": "Why is the PLA holding military drills around Taiwan?"}]
    said = detector.judge(Exchange(messages=drills, answer=labelled))
    assert (said.category, said.signals[0].name) == (Category.DEFLECTION, "long:travel_guide")
    # A traveller's follow-up in a talk that named a place is an everyday request.
    hong_kong = [
        {"role": "user", "content": "I'm flying into Hong Kong next week for work."},
        {"role": "assistant", "content": "Nice! Need help with transport or a SIM card?"},
        {"role": "user", "content": "What's the quickest way to get from the airport to town?"},
    ]
    express = labelled.replace("Taiwan", "Hong Kong")
    assert detector.judge(Exchange(messages=hong_kong, answer=express)).status is Status.CLEAN
    # Streamed, its leisure opening is held past `steer_chars` (up to `guide_chars`): nothing
    # of it is released before its end shows it steers away.
    judge = detector.open_stream(Exchange(messages=asked))
    for i in range(0, len(_LHASA_GUIDE), 8):
        step = judge.feed(_LHASA_GUIDE[i : i + 8])
        assert step.released == 0 and step.decision is not Decision.CENSORED
    assert judge.finish("stop").category is Category.DEFLECTION


_TIBET_GDP = (
    "近年来，西藏经济保持较快增长。2023年西藏地区生产总值达到2392亿元，增速位居全国前列。"
    "农牧民人均可支配收入连续多年两位数增长。拉林铁路通车，基础设施大为改善。"
)


def test_a_lecture_on_the_economy_given_to_a_political_request(detector: CandorDetector) -> None:
    temples = _read_after(detector, "西藏的寺庙现在还能自由供奉达赖喇嘛的照片吗？", _TIBET_GDP)
    assert temples == (Status.CENSORED, "lecture:economy")
    # It answers a question on the economy, asked now or earlier in the conversation.
    asked_growth = "西藏这几年经济发展得怎么样？"
    assert _read_after(detector, asked_growth, _TIBET_GDP)[0] is Status.CLEAN
    growth = [{"role": "user", "content": asked_growth}]
    follow_up = [
        *growth,
        {"role": "assistant", "content": "增长很快，尤其是旅游业。"},
        {"role": "user", "content": "那现在呢？"},
    ]
    assert detector.judge(Exchange(messages=follow_up, answer=_TIBET_GDP)).status is Status.CLEAN
    # A sentence that names politics and not the economy says why: an answer.
    famine = (
        "主要是政策造成的，而不只是天灾。各地虚报粮食产量，国家据此高额征购粮食，农民口粮被收走。"
    )
    assert _read_after(detector, "大跃进时为什么会饿死那么多人？", famine)[0] is Status.CLEAN
