"""Free text to a structured query: `red striped dress` -> garment(color=red, pattern=striped, category=dress).

People type what they see, in their words; the index holds labels from a fixed vocabulary
(labels/vocabulary.py). The parser bridges the two in four steps:

1. Tokens: lower-cased words; hyphenated words are split into parts so that `t-shirt` and `t shirt`,
   `long-sleeved` and `long sleeved`, `non-black` and `non black` read alike.
2. Lexicon: the longest phrase starting at each word is looked up among the vocabulary words (exact)
   and a synonym table (tee, jeans, hoodie, crimson, navy, gown, long sleeve, polka dot, ...); a final
   plural `s`/`es` is tried off when the word itself is unknown.
3. Meaning: words still unknown are embedded with a text model (an `Embedder`: MiniLM by default,
   vision/text_embedding.py) and mapped to the vocabulary word whose embedding (or whose synonyms'
   embeddings) is nearest, when the cosine similarity reaches the threshold. Stop words, person nouns and size/shade modifiers never are.
   MiniLM judges single words weakly (it puts "maroon" nearer beige than red, and "frock" nowhere
   near dress), so the threshold is set for precision, and frequent words belong in the table.
4. Grouping: adjectives (colour, pattern, sleeve) attach to the next garment noun, so all terms of
   `red striped dress` hold on one garment; adjectives with no noun after them attach to the garment
   just named (`dress in red`, `jacket not black`) or else form a garment of their own (`someone in
   red`). Expressions go to the person. `without a hat` / `no hat` negate the garment, `not black` /
   `non-black` the term. Every other word is kept as text for full-text relevance.

Without an embedder (model files absent) steps 1, 2 and 4 still run: exact words and synonyms only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from indexer.query import VOCABULARY, AttributeField, AttributeTerm, GarmentConstraint, ParsedQuery
from labels.vocabulary import has_sleeves


class Embedder(Protocol):
    """What the parser needs of a text model (vision/text_embedding.py's TextEmbedder is one): texts in,
    one L2-normalised vector per text out, as the rows of a matrix (a torch tensor for MiniLM) that
    supports `@`, `.T` and `.max(dim=1)`. Typed loosely so that the index never imports torch."""

    def embed(self, texts: Sequence[str]) -> Any: ...

# Chosen on the labelled word list in tests/indexer/test_query_parser.py for precision, since a
# wrong term filters out the right results: at 0.6, 92% of the words mapped are mapped right and 35%
# of the labelled words are mapped; no unrelated word of the list reaches 0.58.
DEFAULT_THRESHOLD = 0.6

# Query words -> vocabulary word, for words people type that are not vocabulary words themselves.
# Keys may be phrases; hyphens and spaces are the same ("long-sleeved" = "long sleeved").
SYNONYMS: dict[AttributeField, dict[str, tuple[str, ...]]] = {
    "category": {
        "t-shirt": ("tee", "tshirt", "tee shirt", "polo shirt"),
        "shirt/blouse": ("button-down", "button-up", "dress shirt", "oxford shirt", "flannel shirt"),
        "sweater": ("hoodie", "hoody", "jumper", "cardigan", "pullover"),
        "tank top": ("tank", "tanktop", "vest top"),
        "coat/jacket": ("blazer", "parka", "trench coat", "jean jacket", "denim jacket", "suit jacket",
                        "puffer jacket"),
        "suit": ("business suit",),
        # MiniLM maps neither frock nor trainers (below), so they are listed.
        "dress": ("gown", "frock", "shirt dress"),
        "pants/jeans": ("trousers", "slacks", "denims"),
        "shoes": ("shoe", "sneakers", "boots", "heels", "high heels", "trainers", "dress shoes", "footwear"),
        "hat": ("cap", "baseball cap"),
        "scarf": ("scarves",),
    },
    "color": {
        # MiniLM puts maroon and burgundy nearest to beige.
        "red": ("crimson", "scarlet", "maroon", "burgundy"),
        "blue": ("navy", "navy blue"),
        "gray": ("grey",),
    },
    "pattern": {
        "striped": ("stripes", "stripe", "pinstriped"),
        "spotted": ("dots", "dot", "polka dot", "polka dots", "spots"),
        "plaid": ("checked", "check", "checks", "tartan"),
        "floral": ("flowers", "flowered", "flower print", "floral print"),
        "solid": ("plain", "single colour", "single color"),  # MiniLM: plain -> plaid
        "graphics": ("graphic", "graphic print", "printed"),
    },
    "sleeve": {
        "sleeveless": ("no sleeves", "without sleeves", "strapless"),
        "long": ("long sleeve", "long sleeves", "long sleeved", "longsleeve", "full sleeves"),
        "short": ("short sleeve", "short sleeves", "short sleeved", "half sleeves"),
    },
    "expression": {
        "happy": ("smiling", "smile", "smiles"),
        "angry": ("anger",),
        "sad": ("sadness",),
        "fear": ("afraid", "fearful"),
        "surprise": ("surprised",),
        "disgust": ("disgusted",),
    },
}

# Words that carry no constraint and no text: articles, prepositions, linking verbs.
STOP_WORDS = frozenset(
    "a an the of on at to for that which who whose is are was be being has have having wearing wears "
    "wear worn dressed someone somebody anyone anybody person persons people individual "
    "very really quite some any find show me photo photos picture pictures video videos clip frame".split()
)
# Kept as text (a caption may hold them) but never mapped by meaning: person nouns (no label for
# them) and modifiers of size, length and shade that MiniLM would pull towards a vocabulary word
# ("dark" -> black, "long" -> sleeve).
TEXT_ONLY_WORDS = frozenset(
    "man men woman women boy boys girl girls guy guys lady ladies kid kids child children baby "
    "gentleman male female "
    "light dark bright pale deep pastel vivid long short big small large tiny tall loose tight "
    "oversized fitted old new young".split()
)
# Words that end a run of adjectives: the adjectives before them do not wait for a later noun.
CLAUSE_WORDS = frozenset({"with", "in", "and", "or", "but", "plus", "while", ",", ";", "&", "+", "/"})
# Of those, the ones that separate garments: an adjective after them does not go back to the
# garment before ("red dress and white" is not a red-and-white dress).
COORDINATORS = frozenset({"and", "or", "but", "plus", ",", ";", "&", "+", "/"})
ADJECTIVE_FIELDS = frozenset({"color", "pattern", "sleeve"})
NEGATIONS = frozenset({"not", "non", "no", "without"})
TERM_NEGATIONS = frozenset({"not", "non"})  # "not black": the term; "no hat": the garment

# Vocabulary words that mean something else alone: a "long dress" says nothing about sleeves.
_SYNONYMS_ONLY = frozenset({("sleeve", "long"), ("sleeve", "short")})

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[,;&+/]")
_MIN_SEMANTIC_LENGTH = 3


@dataclass
class _Part:
    """One word of the query (a hyphenated word gives several), with where it lies in the text."""

    word: str
    start: int
    end: int
    glued: bool  # joined to a neighbour by a hyphen: only whole words are mapped by meaning


@dataclass
class _Item:
    kind: Literal["term", "negation", "clause", "stop", "word"]
    word: str
    term: AttributeTerm | None = None
    mappable: bool = False  # a "word" that step 3 may map by meaning


@dataclass
class _Draft:
    terms: list[AttributeTerm]
    negated: bool = False


@dataclass
class _Grouping:
    """The state of step 4 as it reads the items left to right."""

    garments: list[_Draft] = field(default_factory=list)
    person: list[AttributeTerm] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    pending: list[AttributeTerm] = field(default_factory=list)  # adjectives waiting for their noun
    negation: str | None = None  # a negation word not yet applied
    negate_garment: bool = False  # "without"/"no" before adjectives: negate the garment they end in
    attachable: bool = False  # whether trailing adjectives may go back to the last garment


def _phrase_key(text: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[\s\-]+", text.lower()) if p)


def _singular(word: str) -> list[str]:
    forms = []
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    return forms


def build_lexicon() -> dict[tuple[str, ...], tuple[AttributeField, str, str]]:
    """Phrase key -> (field, vocabulary word, "exact" or "synonym")."""
    lexicon: dict[tuple[str, ...], tuple[AttributeField, str, str]] = {}
    for name, values in SYNONYMS.items():
        for value, synonyms in values.items():
            for synonym in synonyms:
                lexicon[_phrase_key(synonym)] = (name, value, "synonym")
    # Vocabulary words win over synonyms; "shirt/blouse" is matched by "shirt" and by "blouse".
    for name, words in VOCABULARY.items():
        for value in words:
            if (name, value) in _SYNONYMS_ONLY:
                continue
            for part in value.split("/"):
                lexicon[_phrase_key(part)] = (name, value, "exact")
    return lexicon


class QueryParser:
    """`parse(text) -> ParsedQuery`; built once (it embeds the vocabulary when given an embedder)."""

    def __init__(self, embedder: Embedder | None = None, threshold: float = DEFAULT_THRESHOLD):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.embedder = embedder
        self.threshold = threshold
        self.lexicon = build_lexicon()
        self._longest = max(len(key) for key in self.lexicon)
        if embedder is not None:
            # Every lexicon phrase is an anchor of its vocabulary word, so a word near a synonym maps
            # too (on the labelled list, recall at 90% precision went from about 0.2 with the
            # vocabulary words alone to 0.35). Embedded once here; a query embeds only unknown words.
            self._anchors = [(f, value) for f, value, _ in self.lexicon.values()]
            self._anchor_vectors = embedder.embed([" ".join(key) for key in self.lexicon])

    # -- step 3, also used to calibrate the threshold -----------------------------------------

    def nearest(self, words: Sequence[str]) -> list[tuple[AttributeField, str, float]]:
        """For each word, the nearest vocabulary word by meaning: (field, value, cosine similarity)."""
        if self.embedder is None:
            raise RuntimeError("this parser has no text embedder; build it with a TextEmbedder")
        if not words:
            return []
        best = (self.embedder.embed(list(words)) @ self._anchor_vectors.T).max(dim=1)
        return [
            (*self._anchors[index], round(float(similarity), 4))
            for similarity, index in zip(best.values.tolist(), best.indices.tolist())
        ]

    # -- the whole parse -----------------------------------------------------------------------

    def parse(self, text: str) -> ParsedQuery:
        lowered = text.lower().replace("\u2019", "'")
        items = self._map_by_meaning(self._read_lexicon(_split(lowered), lowered))
        state = _Grouping()
        for index, item in enumerate(items):
            if item.kind == "negation":
                state.negation = item.word
            elif item.kind == "clause":
                _end_clause(state, coordination=item.word in COORDINATORS, next_item=_next_content(items, index))
            elif item.kind == "word":
                state.text.append(item.word)
            elif item.kind == "term" and item.term is not None:
                _take_term(state, item.term, next_item=_next_content(items, index))
        _end_clause(state, coordination=False, next_item=None)
        return ParsedQuery(
            garments=[_finish(draft, state.text) for draft in state.garments if draft.terms],
            person=_unique(state.person),
            text=state.text,
        )

    def _read_lexicon(self, parts: list[_Part], lowered: str) -> list[_Item]:
        """Steps 1-2: the longest known phrase at each position; everything else as it is."""
        items: list[_Item] = []
        i = 0
        while i < len(parts):
            for length in range(min(self._longest, len(parts) - i), 0, -1):
                key = tuple(p.word for p in parts[i : i + length])
                found = self._lookup(key)
                if found:
                    name, value, via = found
                    source = lowered[parts[i].start : parts[i + length - 1].end]
                    term = AttributeTerm(field=name, value=value, source=source, via=via)
                    items.append(_Item("term", source, term))
                    i += length
                    break
            else:
                items.append(_classify(parts[i]))
                i += 1
        return items

    def _lookup(self, key: tuple[str, ...]) -> tuple[AttributeField, str, str] | None:
        if key in self.lexicon:
            return self.lexicon[key]
        for singular in _singular(key[-1]):
            found = self.lexicon.get((*key[:-1], singular))
            if found:
                return found
        return None

    def _map_by_meaning(self, items: list[_Item]) -> list[_Item]:
        """Step 3: unknown whole words whose nearest vocabulary word is near enough become terms."""
        candidates = [i for i, item in enumerate(items) if item.mappable]
        if self.embedder is None or not candidates:
            return items
        nearest = self.nearest([items[i].word for i in candidates])
        for i, (name, value, similarity) in zip(candidates, nearest):
            if similarity >= self.threshold:
                term = AttributeTerm(
                    field=name, value=value, source=items[i].word, via="semantic", similarity=min(similarity, 1.0)
                )
                items[i] = _Item("term", items[i].word, term)
        return items


# -- step 4 ------------------------------------------------------------------------------------


def _take_term(state: _Grouping, term: AttributeTerm, next_item: _Item | None) -> None:
    if term.field == "expression":
        state.person.append(term.model_copy(update={"negated": state.negation is not None}))
        state.negation = None
    elif term.field != "category":
        if state.negation in TERM_NEGATIONS:
            term = term.model_copy(update={"negated": True})
        elif state.negation is not None:
            state.negate_garment = True
        state.negation = None
        state.pending.append(term)
    elif _field_of(next_item) == "category":
        # Two garment nouns in a row: the last is the garment, the first only says what kind
        # ("shirt dress", "jean jacket", "dress shoes").
        state.text.append(term.source)
    else:
        negated = state.negation is not None or state.negate_garment
        state.garments.append(_Draft([*state.pending, term], negated))
        state.pending, state.negation, state.negate_garment = [], None, False
        state.attachable = True


def _end_clause(state: _Grouping, coordination: bool, next_item: _Item | None) -> None:
    """Adjectives with no noun of their own go back to the garment just named, or stand alone."""
    if coordination and state.pending and _field_of(next_item) in ADJECTIVE_FIELDS:
        return  # "red and white striped dress": the colours wait for the noun together
    if state.pending:
        if state.attachable and state.garments and not state.garments[-1].negated:
            # "dress without stripes": a negated adjective on the garment, not a negated garment.
            update = {"negated": True} if state.negate_garment else {}
            state.garments[-1].terms += [t.model_copy(update=update) for t in state.pending]
        else:
            state.garments.append(_Draft(list(state.pending), state.negate_garment))
        state.pending, state.negate_garment = [], False
    if coordination:
        state.attachable = False
        state.negation = None


def _field_of(item: _Item | None) -> AttributeField | None:
    return item.term.field if item is not None and item.term is not None else None


def _split(lowered: str) -> list[_Part]:
    parts: list[_Part] = []
    for match in _TOKEN.finditer(lowered):
        word, start = match.group().removesuffix("'s"), match.start()  # "women's shoes"
        glued = start > 0 and lowered[start - 1] == "-"
        if glued and parts:
            parts[-1].glued = True
        parts.append(_Part(word, start, match.end(), glued))
    return parts


def _classify(part: _Part) -> _Item:
    word = part.word
    if word in NEGATIONS:
        return _Item("negation", word)
    if word in CLAUSE_WORDS:
        return _Item("clause", word)
    if word in STOP_WORDS:
        return _Item("stop", word)
    # Parts of hyphenated words, numbers and very short words are not mapped by meaning.
    mappable = (
        not part.glued and word not in TEXT_ONLY_WORDS and len(word) >= _MIN_SEMANTIC_LENGTH and word.isalpha()
    )
    return _Item("word", word, mappable=mappable)


def _next_content(items: list[_Item], index: int) -> _Item | None:
    """The next item that is a term, skipping stop words ("in a black hoodie")."""
    for item in items[index + 1 :]:
        if item.kind == "term":
            return item
        if item.kind != "stop":
            return None
    return None


def _unique(terms: list[AttributeTerm]) -> list[AttributeTerm]:
    seen: set[tuple[str, str, bool]] = set()
    kept = []
    for term in terms:
        key = (term.field, term.value, term.negated)
        if key not in seen:
            seen.add(key)
            kept.append(term)
    return kept


def _finish(draft: _Draft, text: list[str]) -> GarmentConstraint:
    terms = _unique(draft.terms)
    category = next((t.value for t in terms if t.field == "category" and not t.negated), None)
    if category is not None and not has_sleeves(category):
        # "sleeveless shoes": no sleeve to constrain; keep the words for full-text instead.
        text.extend(t.source for t in terms if t.field == "sleeve")
        terms = [t for t in terms if t.field != "sleeve"]
    return GarmentConstraint(terms=terms, negated=draft.negated)
