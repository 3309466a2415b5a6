"""Search over moments, backend-neutral: the request, the scoring model and the result page.

Every backend (embedded SQLite, Elasticsearch) answers a `SearchRequest` with the page this module's
reference (`rank_moments` / `rank_documents`) gives over the same moments: the code here is the oracle
the backends' own scoring (SQL, Elasticsearch queries) is tested against.

The scoring model. A label is a guess: the vision stages keep each label's calibrated alternatives
(labels.Label.alternatives; a moment's are averaged over its frames), so a term holds with a
probability, not yes or no:
- P(term) on a garment: the probability its field has the term's value: the alternatives' probability,
  and the label's own value at no less than its confidence. A colour holds as the primary OR the
  secondary colour (the larger of the two); its probability is the namer's pixel share plus a part
  of its neighbouring names' shares (`colour_names`). A negated term holds with 1 - P, on a labelled field only:
  an unlabelled field satisfies neither "is" nor "is not" (P = 0). A term mapped by meaning (the
  parser's cosine) is weighed by its similarity.
- A garment constraint on a garment: the probability that all its terms hold there, their product.
  A positive constraint on a person: its best garment (two constraints may use the same one, as a
  nested query per constraint does). A negated constraint ("without a hat"): the probability that no
  garment meets it, the product of (1 - P) over the person's garments.
- Expression terms: P on the person's summarised expression, same rules.
- The person: the product over the query's constraints and expression terms (1 for none: an empty
  query), times the person's salience, detection confidence x (0.5 + 0.5 x prominence), with
  prominence = min(1, sqrt(share of the frame the person covers / PROMINENT_SHARE)): the main person
  outranks a passer-by in the same clothes.
- A moment with several persons: the best one. Score = that person's.
- `threshold`: moments scoring below it are not returned (the relevance threshold; 0 keeps anything
  with a non-zero score).
- `strict`: the top label only, as before alternatives: a term holds when the label's value is it
  (negated: labelled and not it), its score the label's confidence; a negated constraint excludes a
  person with any garment meeting it.
- `min_confidence`: a label less sure than it counts as absent: a garment whose category is below it is
  not there at all, a colour below it is unknown, a person detected below it is not there.
- Words the parser could not map (`ParsedQuery.text`) are not searched for: `query_notice` says so,
  and a query made of such words alone matches nothing (rather than everything).

Order and pages: hits sort by (score desc, media_id, start, moment_id), a total order, and the cursor
is the last hit's sort key (base64 JSON, with a fingerprint of the request), so the next page is
"everything after that key": pages never repeat or skip a moment even when scores tie, and a
cursor given with another query is refused rather than silently misapplied.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import hashlib
import heapq
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import from_json

from indexer.moments import COLOR_NEIGHBOURS, Moment
from indexer.query import AttributeTerm, GarmentConstraint, ParsedQuery
from indexer.review import ReviewStatus
from labels import Box
from labels.vocabulary import GARMENT_LABEL_FIELDS

MAX_LIMIT = 200

# Relevance below which a moment is not returned: low, since the alternatives' probabilities are
# calibrated and a right answer often rests on a second guess (see docs/models/retrieval.md).
DEFAULT_THRESHOLD = 0.01

# How much of a neighbouring colour name's share counts for a name (colour_names). Chosen on
# ../shared/data/attributes-dev (docs/models/retrieval.md): 0.1 and 0.25 both lift recall@10 from
# 0.57 to 0.64-0.66; without it a garment the namer calls gray is never "white".
COLOR_LEAK = 0.25

# A person covering this share of the frame, or more, is fully prominent; smaller ones weigh down to
# half (a passer-by in the same clothes ranks below the person the picture is of).
PROMINENT_SHARE = 0.05


class InvalidCursor(ValueError):
    """The cursor is not one this search produced (garbled, or from another query)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Model):
    """One search: the parsed query plus filters and the page wanted."""

    query: ParsedQuery = Field(default_factory=ParsedQuery)
    media_ids: list[str] | None = Field(None, description="only these media; None: all")
    start: float | None = Field(None, ge=0.0, description="seconds: only moments ending at or after it")
    end: float | None = Field(None, ge=0.0, description="seconds: only moments starting at or before it")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="labels less sure than this count as absent")
    review_status: list[ReviewStatus] | None = Field(None, description="only moments in these review states; None: all")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0,
                             description="relevance: moments scoring below it are not returned")
    strict: bool = Field(False, description="top labels only: a term holds when the label's value is it")
    limit: int = Field(20, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, description="opaque: SearchPage.next_cursor of the previous page")

    @model_validator(mode="after")
    def _check(self) -> SearchRequest:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self

    def fingerprint(self) -> str:
        """What the cursor is bound to: everything but the page position and size."""
        key = self.model_dump_json(exclude={"cursor", "limit"})
        return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


class TermMatch(_Model):
    """One query term, the label of the field it looked at, and how probably it holds."""

    term: AttributeTerm
    label: str = Field(description="the field's label value (for a colour: the primary or secondary one that fits "
                                   "best); '' when the field is unlabelled")
    confidence: float = Field(ge=0.0, le=1.0, description="the probability that the term holds")


class MatchedGarment(_Model):
    """The garment chosen for one positive garment constraint of the query."""

    constraint: int = Field(ge=0, description="index into query.garments")
    category: str
    box: Box | None = Field(None, description="the garment's box in the moment's best frame, when seen there")
    terms: list[TermMatch]
    score: float = Field(description="the probability that all the constraint's terms hold on this garment")


class MomentHit(_Model):
    """A moment that matched: the moment itself, its score, and what in it matched (for display)."""

    moment: Moment
    score: float
    person_index: int = Field(0, ge=0, description="which of moment.persons matched")
    matched: list[MatchedGarment] = []
    expression_matched: list[TermMatch] = Field([], description="one per expression term of the query")


class SearchPage(_Model):
    hits: list[MomentHit]
    total: int = Field(ge=0, description="hits of the whole search, all pages (see total_exact)")
    total_exact: bool = Field(True, description="False: `total` is a lower bound (the hits the backend met while "
                                                "finding the page; counting them all would mean scoring them all)")
    next_cursor: str | None = None


# --- what the query asks, in words ------------------------------------------------------------


def usable(query: ParsedQuery) -> bool:
    """Whether the query can be searched: it has a term, or no words at all (an empty query lists
    everything). Words alone that map to nothing make no search."""
    return bool(query.garments or query.person or not query.text)


def query_notice(query: ParsedQuery) -> str | None:
    """What the user should know about words the search could not use, or None."""
    if not query.text:
        return None
    words = ", ".join(f"'{word}'" for word in dict.fromkeys(query.text))
    verb = "is" if len(set(query.text)) == 1 else "are"
    if not usable(query):
        return (f"{words} {verb} not something Vestis labels, and nothing else was asked: no moments. "
                "The words it knows are listed under 'vocabulary'.")
    return f"{words} {verb} not something Vestis labels; searched for the rest."


# --- the scoring model -------------------------------------------------------------------------
# The core reads a moment in its JSON form (Moment.model_dump(), or the stored document as parsed
# JSON): a backend scores candidates from plain dicts, ten times cheaper than validating each into
# a Moment, and builds models only for the hits of the page it returns.

Doc = Mapping[str, Any]  # a Moment, or one of its parts, in JSON form


def distribution(label: Doc | None, floor: float = 0.0, strict: bool = False) -> dict[str, float]:
    """Value -> probability for one stored label; empty when unlabelled or less sure than `floor`.
    Strict: the top value alone, at its confidence."""
    if label is None or label["confidence"] < floor:
        return {}
    if strict:
        return {label["value"]: label["confidence"]}
    probabilities = {alt["value"]: alt["probability"] for alt in label.get("alternatives") or ()}
    probabilities[label["value"]] = max(probabilities.get(label["value"], 0.0), label["confidence"])
    return probabilities


def colour_names(probabilities: Mapping[str, float]) -> dict[str, float]:
    """The probability that each colour name applies to a garment, from the namer's pixel shares: a
    name's share plus COLOR_LEAK of its neighbours' (the namer flips between neighbouring names,
    indexer/moments.py COLOR_NEIGHBOURS, where a person might say either), at most 1."""
    names = dict(probabilities)
    for name, p in probabilities.items():
        for neighbour in COLOR_NEIGHBOURS.get(name, ()):
            names[neighbour] = names.get(neighbour, 0.0) + COLOR_LEAK * p
    return {name: min(1.0, p) for name, p in names.items()}


def _colour_name(probabilities: Mapping[str, float], name: str) -> float:
    """colour_names(probabilities)[name], without building the whole table (the hot path of a search)."""
    p = probabilities.get(name, 0.0)
    for neighbour in COLOR_NEIGHBOURS.get(name, ()):
        p += COLOR_LEAK * probabilities.get(neighbour, 0.0)
    return min(1.0, p)


def _term_on(term: AttributeTerm, labels: Sequence[Doc | None], floor: float, strict: bool) -> tuple[float, str]:
    """(probability that `term` holds, the label value shown for it) on a field with these labels
    (one, or a colour's primary and secondary)."""
    found = [(distribution(label, floor, strict), label["value"]) for label in labels if label is not None]
    found = [(probabilities, value) for probabilities, value in found if probabilities]
    if not found:
        return 0.0, ""  # unlabelled: neither "is" nor "is not"
    if term.field == "color" and not strict:
        p, shown = max((_colour_name(probabilities, term.value), value) for probabilities, value in found)
        found = [(colour_names(probabilities), value) for probabilities, value in found] if term.negated else found
    else:
        p, shown = max((probabilities.get(term.value, 0.0), value) for probabilities, value in found)
    if term.negated:
        if strict:  # labelled and not it: as sure as the surest label
            p = 0.0 if p > 0 else max(probabilities[value] for probabilities, value in found)
            shown = max(found, key=lambda item: item[0][item[1]])[1]
        else:
            p = 1.0 - p
            shown = max(found, key=lambda item: item[0][item[1]])[1]  # what it is instead
    p = min(1.0, p)
    return (p * term.similarity if term.via == "semantic" else p), shown


def _garment_terms(garment: Doc, constraint: GarmentConstraint, floor: float,
                   strict: bool) -> tuple[float, list[tuple[float, str]]]:
    """(probability that all the constraint's terms hold on this garment, each term's (P, label))."""
    if not distribution(garment["category"], floor):
        return 0.0, []  # a garment we are not sure is there
    found = [_term_on(term, [garment.get(f) for f in term.label_fields], floor, strict) for term in constraint.terms]
    return math.prod(p for p, _ in found), found


def prominence(person: Doc) -> float:
    share = person.get("frame_share")
    return 1.0 if share is None else min(1.0, math.sqrt(share / PROMINENT_SHARE))


def salience(person: Doc) -> float:
    """How much the person is the subject: detection confidence x (0.5 + 0.5 x prominence)."""
    return person["detection"]["confidence"] * (0.5 + 0.5 * prominence(person))


@dataclass
class _Evaluation:
    """How a moment meets a query: the score and, kept light, what matched."""

    score: float
    person_index: int
    garments: list[tuple[int, int, list[tuple[float, str]], float]]  # constraint, garment index, terms, score
    expressions: list[tuple[float, str]]


def _evaluate_person(person: Doc, index: int, request: SearchRequest) -> _Evaluation | None:
    """How one person meets the query, or None when the score is 0."""
    query, floor, strict = request.query, request.min_confidence, request.strict
    if person["detection"]["confidence"] < floor:
        return None
    score = salience(person)
    garments: list[tuple[int, int, list[tuple[float, str]], float]] = []
    for c, constraint in enumerate(query.garments):
        if constraint.negated:
            for garment in person["garments"]:
                p, _ = _garment_terms(garment, constraint, floor, strict)
                score *= (p == 0.0) if strict else 1.0 - p
        else:
            best: tuple[int, list[tuple[float, str]], float] | None = None
            for g, garment in enumerate(person["garments"]):
                p, found = _garment_terms(garment, constraint, floor, strict)
                if p > 0 and (best is None or p > best[2]):  # first of equals: stable
                    best = (g, found, p)
            if best is None:
                return None
            garments.append((c, *best))
            score *= best[2]
        if score <= 0.0:
            return None
    expressions = [_term_on(term, [person.get("expression")], floor, strict) for term in query.person]
    score *= math.prod(p for p, _ in expressions)
    return _Evaluation(score, index, garments, expressions) if score > 0.0 else None


def _evaluate(doc: Doc, request: SearchRequest) -> _Evaluation | None:
    """The one decision: whether the moment matches every filter of the request, and its score."""
    if not usable(request.query):
        return None
    if request.media_ids is not None and doc["media_id"] not in request.media_ids:
        return None
    if request.start is not None and doc["end"] < request.start:
        return None
    if request.end is not None and doc["start"] > request.end:
        return None
    if request.review_status is not None and doc.get("review_status", "unreviewed") not in request.review_status:
        return None
    best: _Evaluation | None = None
    for index, person in enumerate(doc["persons"]):
        evaluation = _evaluate_person(person, index, request)
        if evaluation is not None and (best is None or evaluation.score > best.score):
            best = evaluation
    return best if best is not None and best.score >= request.threshold else None


def _hit(moment: Moment, evaluation: _Evaluation, query: ParsedQuery) -> MomentHit:
    person = moment.persons[evaluation.person_index]

    def terms(found: list[tuple[float, str]], of: list[AttributeTerm]) -> list[TermMatch]:
        return [TermMatch(term=t, label=shown, confidence=p) for t, (p, shown) in zip(of, found)]

    matched = [
        MatchedGarment(constraint=c, category=person.garments[g].category.value, box=person.garments[g].box,
                       terms=terms(found, query.garments[c].terms), score=score)
        for c, g, found, score in evaluation.garments
    ]
    return MomentHit(moment=moment, score=evaluation.score, person_index=evaluation.person_index, matched=matched,
                     expression_matched=terms(evaluation.expressions, query.person))


def match_moment(moment: Moment, request: SearchRequest) -> MomentHit | None:
    """THE ranking function: the hit for `moment` under `request` (score and evidence), or None.

    Applies every filter of the request (media, time range, constraints, min_confidence, threshold),
    so a backend may hand it any superset of the true candidates. `rank_documents` decides with the
    same code on the moment's JSON form.
    """
    evaluation = _evaluate(moment.model_dump(), request)
    return _hit(moment, evaluation, request.query) if evaluation is not None else None


def score_document(doc: Doc, request: SearchRequest) -> float | None:
    """The score of a moment in JSON form under `request`, or None when it does not match."""
    evaluation = _evaluate(doc, request)
    return evaluation.score if evaluation is not None else None


# --- order and pages ---------------------------------------------------------------------------

SortKey = tuple[float, str, float, str]


def sort_key(hit: MomentHit) -> SortKey:
    """Ascending key of the result order: score desc, then media, start and moment id (a total order)."""
    return (-hit.score, hit.moment.media_id, hit.moment.start, hit.moment.moment_id)


def encode_cursor(key: SortKey, request: SearchRequest) -> str:
    payload = {"k": list(key), "f": request.fingerprint()}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, request: SearchRequest) -> SortKey:
    """The sort key a cursor resumes after; InvalidCursor when it is garbled or from another search."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        score, media_id, start, moment_id = payload["k"]
        key = (float(score), str(media_id), float(start), str(moment_id))
        fingerprint = payload["f"]
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidCursor(f"not a search cursor: {cursor[:40]!r}") from exc
    if fingerprint != request.fingerprint():
        raise InvalidCursor("the cursor belongs to another search (query or filters changed)")
    return key


def document_key(score: float, doc: Doc) -> SortKey:
    return (-score, doc["media_id"], float(doc["start"]), doc["moment_id"])


def _slim_label(label) -> dict | None:
    if label is None:
        return None
    slim: dict[str, Any] = {"value": label.value, "confidence": label.confidence}
    if label.alternatives:
        slim["alternatives"] = [{"value": a.value, "probability": a.probability} for a in label.alternatives]
    return slim


def scoring_view(moment: Moment) -> dict:
    """The parts of a moment the ranking reads, as JSON: a fraction of the full document, so a backend
    that stores it parses candidates faster (boxes and frame lists are only needed for the page).
    Persons and garments keep their order: hits point into them by index."""
    return {
        "moment_id": moment.moment_id, "media_id": moment.media_id, "start": moment.start, "end": moment.end,
        "review_status": moment.review_status,
        "persons": [
            {"detection": _slim_label(p.detection), "expression": _slim_label(p.expression),
             "frame_share": p.frame_share,
             "garments": [{name: _slim_label(getattr(g, name)) for name in GARMENT_LABEL_FIELDS} for g in p.garments]}
            for p in moment.persons
        ],
    }


def page_from_keys(keyed: Iterable[tuple[SortKey, Any]], total: int, request: SearchRequest,
                   hit_of: Callable[[Any], MomentHit]) -> SearchPage:
    """The page after the request's cursor from (sort key, item) pairs of matching moments: the
    limit + 1 smallest keys after the cursor, `hit_of` building the hits of the page."""
    after = decode_cursor(request.cursor, request) if request.cursor else None
    rest = (pair for pair in keyed if after is None or pair[0] > after)
    page = heapq.nsmallest(request.limit + 1, rest, key=lambda pair: pair[0])  # keys are unique
    hits = [hit_of(item) for _, item in page[: request.limit]]
    more = len(page) > request.limit
    return SearchPage(hits=hits, total=total, next_cursor=encode_cursor(sort_key(hits[-1]), request) if more else None)


def rank_documents(docs: Iterable[Doc | str], request: SearchRequest,
                   full: Callable[[Doc], Doc] | None = None) -> SearchPage:
    """The search over candidates, for backends: moments in JSON form (as text or parsed) in, the page
    the request asks for out. Any superset of the true candidates gives the same page.

    Only each candidate's sort key is kept while scanning; the page's few hits are parsed and
    evaluated again to build their models. (Keeping thousands of parsed documents alive made the
    garbage collector, not the matching, the cost of a broad query.) Candidates may be scoring views
    (`scoring_view`): `full` then gives the whole moment of a page hit.
    """
    if request.cursor:
        decode_cursor(request.cursor, request)  # refuse a bad cursor before any work
    keyed: list[tuple[SortKey, Doc | str]] = []
    for raw in docs:
        doc = from_json(raw) if isinstance(raw, str) else raw
        evaluation = _evaluate(doc, request)
        if evaluation is not None:
            keyed.append((document_key(evaluation.score, doc), raw))

    def hit_of(raw: Doc | str) -> MomentHit:
        doc = from_json(raw) if isinstance(raw, str) else raw
        evaluation = _evaluate(doc, request)
        assert evaluation is not None  # ranked above: only documents that matched
        return _hit(Moment.model_validate(full(doc) if full else doc), evaluation, request.query)

    return page_from_keys(keyed, len(keyed), request, hit_of)


def rank_moments(moments: Iterable[Moment], request: SearchRequest) -> SearchPage:
    """The reference search: every moment given is a candidate. Tests compare a backend against it."""
    return rank_documents((m.model_dump() for m in moments), request)


# --- top k from bound lists: how the backends rank without reading every candidate -----------------
# Every factor of a score is at most 1, so a moment's score is at most salience x P(t) for any positive
# term t of the query, and at most its salience. Backends store, per moment, that bound for every
# term its labels make possible (`moment_bounds`) with an index by bound; a search walks the lists
# of the query's positive terms from the top, scores each moment it meets with the reference code
# above, and stops once the page's last hit scores above every bound not yet read (Fagin's threshold
# algorithm). The page is the reference's page; only how much is read differs.

# Bump with any change to the scoring model or to moment_bounds: stored bounds of another version are
# recomputed (the embedded store refills its lists on open; Elasticsearch moves to a new schema).
BOUNDS_VERSION = "5"  # 1: before colour names took their neighbours' shares; 2: before salience_least;
# 3: before pairs of a category with a pattern or sleeve; 4: before triples and pairs with an expression

# Bounds below this are not stored; a search with a lower threshold scans every candidate instead.
BOUND_FLOOR = 0.001
# Pairs (`pair_key`), triples (`triple_key`) and pairs with an expression (`expression_key`) are many
# more: only those reaching the default threshold are kept.
PAIR_FLOOR = DEFAULT_THRESHOLD
SALIENCE_KEY = "salience"
# A person's score is at most the product of its terms' bounds over its salience to the power (terms - 1);
# over a moment's persons that holds with the least salience among them (kept whatever its size).
LEAST_SALIENCE_KEY = "salience_least"
_SLACK = 1e-9  # bounds and scores are products taken in different orders: allow for the last bit


@functools.lru_cache(maxsize=4096)  # a few hundred keys, asked for once per label at every write
def bound_key(field: str, value: str) -> str:
    """The name of one term's bound: "color_black", "category_coat_jacket" (also an Elasticsearch field)."""
    return re.sub(r"[^a-z0-9]+", "_", f"{field}_{value}".lower())


def moment_bounds(doc: Doc) -> dict[str, float]:
    """Per term key, salience x P(term) maximised over the moment's persons and garments, and the
    salience itself: what `rank_by_bounds` walks. Bounds under BOUND_FLOOR are left out."""
    bounds: dict[str, float] = {}

    def keep(key: str, value: float) -> None:
        if value > bounds.get(key, 0.0):
            bounds[key] = value

    pairs: dict[str, float] = {}

    def keep_pair(key: str, value: float) -> None:
        # (a hair under the floor too: a product taken in another order than the score's may round down)
        if value >= PAIR_FLOOR * (1 - _SLACK) and value > pairs.get(key, 0.0):
            pairs[key] = value

    saliences = [salience(person) for person in doc["persons"]]
    positive = [x for x in saliences if x > 0]
    if positive:  # the least salient person that can score: what a product of bounds divides by
        bounds[LEAST_SALIENCE_KEY] = min(positive)
    for person in doc["persons"]:
        s = salience(person)
        keep(SALIENCE_KEY, s)
        expressions = {value: min(1.0, e) for value, e in distribution(person.get("expression")).items()}
        for garment in person["garments"]:
            for name in ("category", "pattern", "sleeve"):
                for value, p in distribution(garment.get(name)).items():
                    keep(bound_key(name, value), s * min(1.0, p))
            colours: dict[str, float] = {}
            for name in ("color", "secondary_color"):
                for value, p in colour_names(distribution(garment.get(name))).items():
                    colours[value] = max(colours.get(value, 0.0), min(1.0, p))
                    keep(bound_key("color", value), s * min(1.0, p))
            paired = {"color": colours, **{name: {v: min(1.0, q) for v, q in distribution(garment.get(name)).items()}
                                           for name in PAIRED_FIELDS if name != "color"}}
            for category, p in distribution(garment["category"]).items():
                p = min(1.0, p)
                for name, values in paired.items():
                    for value, q in values.items():
                        key, bound = pair_key(category, value, name), s * (p * q)  # the reference's order
                        if bound < PAIR_FLOOR:
                            continue  # and so is every combination with it
                        keep_pair(key, bound)
                        for expression, e in expressions.items():
                            keep_pair(expression_key(key, expression), bound * e)  # the reference's order
                        if name == "color":
                            for pattern, r in paired["pattern"].items():
                                # the reference's order for a query typed colour, pattern, category
                                keep_pair(triple_key(category, value, pattern), s * (q * r * p))
        for value, e in expressions.items():
            keep(bound_key("expression", value), s * e)
    kept = {key: value for key, value in bounds.items() if value >= BOUND_FLOOR or key == LEAST_SALIENCE_KEY}
    return {**kept, **pairs}


# The fields a category is paired with in the bound lists ("black jacket", "floral skirt", "long-sleeve dress").
PAIRED_FIELDS = ("color", "pattern", "sleeve")


@functools.lru_cache(maxsize=4096)
def pair_key(category: str, value: str, field: str = "color") -> str:
    """The bound of a category and another term (a colour, pattern or sleeve) on the same garment ("a
    black jacket"): far tighter than either alone, for the most common narrow queries."""
    return f"{bound_key('category', category)}__{bound_key(field, value)}"


@functools.lru_cache(maxsize=4096)
def triple_key(category: str, colour: str, pattern: str) -> str:
    """The bound of a category, a colour and a pattern on one garment ("a red striped dress"): the score
    itself for such a query, where the pairs leave out the pattern's second guesses."""
    return f"{pair_key(category, colour)}__{bound_key('pattern', pattern)}"


@functools.lru_cache(maxsize=4096)
def expression_key(pair: str, expression: str) -> str:
    """The bound of a pair (`pair_key`) on one garment and an expression of the same person ("smiling,
    in a floral skirt")."""
    return f"{pair}__{bound_key('expression', expression)}"


# --- term probabilities: the tight bound -------------------------------------------------------------
# A moment's bounds above are maxima over all its garments; the score takes every term of a constraint on
# one garment. So backends also keep, per person and per garment, P(term) for every term its labels make
# possible (`term_probabilities`), and combine them per query the way the model does: per person, the
# salience times, per positive constraint, the best garment's product of its terms' P (a negated term:
# 1 - P) times each expression term's P. That is the score itself for most queries; it is an upper bound
# in every case, because what it leaves out can only lower a score: a negated constraint's factor
# (taken as 1), strict mode (the top label alone scores no more than its distribution), an unlabelled
# field under a negated term (taken as 1 - 0), a colour label under `min_confidence` (its companion's
# confidence lets it in). The walk scores with the reference only the moments whose tight bound can
# still reach the page (`rank_by_bounds`), and Elasticsearch ranks by it server-side.

# P(term) under this is not kept: a factor below BOUND_FLOOR puts any score under the least threshold the
# bound lists serve. In log space (Elasticsearch scores must not be negative) a factor is kept as
# LOG_OFFSET + ln P, at least 0 for every P kept.
LOG_OFFSET = 7.0
assert math.exp(-LOG_OFFSET) <= BOUND_FLOOR
# The tight bound is computed in another order than the score (and, by Elasticsearch, in float32):
# what it may fall short of the score by, relatively.
TIGHT_SLACK = 1e-4


@dataclass
class GarmentTerms:
    """One garment's terms: key -> (P(term), the confidence of the label it rests on), and the
    category's confidence (under `min_confidence` the garment is not there)."""

    category_confidence: float
    terms: dict[str, tuple[float, float]]


@dataclass
class PersonTerms:
    """One person's salience, detection confidence, expression terms (as GarmentTerms.terms) and garments."""

    salience: float
    detection_confidence: float
    expression: dict[str, tuple[float, float]]
    garments: list[GarmentTerms]


def term_probabilities(doc: Doc) -> list[PersonTerms]:
    """Per person of a moment (JSON form, or its scoring view), in order: what `tight_bound` combines.
    P is kept from BOUND_FLOOR up (a colour: the better of the primary and secondary colour)."""
    persons = []
    for person in doc["persons"]:
        garments = []
        for garment in person["garments"]:
            terms: dict[str, tuple[float, float]] = {}
            for name in ("category", "pattern", "sleeve"):
                label = garment.get(name)
                if label is not None:
                    for value, p in distribution(label).items():
                        terms[bound_key(name, value)] = (min(1.0, p), label["confidence"])
            for name in ("color", "secondary_color"):
                label = garment.get(name)
                if label is not None:
                    for value, p in colour_names(distribution(label)).items():
                        key = bound_key("color", value)
                        old_p, old_conf = terms.get(key, (0.0, 0.0))
                        terms[key] = (max(old_p, p), max(old_conf, label["confidence"]))
            garments.append(GarmentTerms(garment["category"]["confidence"],
                                         {k: v for k, v in terms.items() if v[0] >= BOUND_FLOOR}))
        label = person.get("expression")
        expression = {bound_key("expression", value): (min(1.0, p), label["confidence"])
                      for value, p in distribution(label).items() if p >= BOUND_FLOOR} if label else {}
        persons.append(PersonTerms(salience(person), person["detection"]["confidence"], expression, garments))
    return persons


@dataclass(frozen=True)
class TightTerm:
    key: str
    negated: bool


@dataclass(frozen=True)
class TightQuery:
    """What the tight bound combines for one request: per positive constraint with a positive term, its
    terms (constraints of negated terms only, and negated constraints, count as 1); the expression terms;
    `scale`, the product of the semantic terms' similarities; `floor`, the request's min_confidence;
    `absent`, the term keys of negated constraints of one exactly typed term ("without a hat"), whose
    factor, the product over the person's garments of 1 - P (those whose category and term labels reach
    the min_confidence), is bounded by the least of them (in strict mode, for a colour under a
    min_confidence and for other negated constraints: none, the factor counts as 1)."""

    constraints: tuple[tuple[TightTerm, ...], ...]
    expression: tuple[TightTerm, ...]
    scale: float
    floor: float
    absent: tuple[str, ...] = ()


def tight_query(request: SearchRequest) -> TightQuery:
    """The request's TightQuery. Negated terms count as 1 in strict mode (the top label's confidence may
    exceed 1 - P) and under a min_confidence (a colour's P is the better label's, whose 1 - P is lower)."""
    query = request.query
    negations = not request.strict and request.min_confidence == 0

    def terms(of: Iterable[AttributeTerm]) -> tuple[TightTerm, ...]:
        return tuple(TightTerm(bound_key(t.field, t.value), t.negated) for t in of if negations or not t.negated)

    constraints = tuple(terms(c.terms) for c in query.garments
                        if not c.negated and any(not t.negated for t in c.terms))
    scored = [t for c in query.garments if not c.negated for t in c.terms] + list(query.person)
    scale = math.prod(abs(t.similarity) for t in scored if t.via == "semantic")  # |score| at most
    # Not for a term mapped by meaning (it weighs P by its similarity: 1 - P x similarity is more than
    # 1 - P), nor for a colour under a min_confidence (its P is the better label's, see above).
    absent = tuple(dict.fromkeys(
        bound_key(t.field, t.value) for c in query.garments if c.negated and len(c.terms) == 1 for t in c.terms
        if not t.negated and t.via != "semantic" and not request.strict
        and (request.min_confidence == 0 or t.field != "color")))
    return TightQuery(constraints, terms(query.person), scale, request.min_confidence, absent)


def tight_bound(persons: Sequence[PersonTerms], tight: TightQuery) -> float:
    """An upper bound of the moment's score under the request `tight` was made from (see above); 0: no match.
    The reference for the backends' own (SQL, Elasticsearch) computations of it."""
    floor = tight.floor
    best = 0.0
    for person in persons:
        if person.detection_confidence < floor:
            continue
        score = person.salience * tight.scale
        for constraint in tight.constraints:
            garment_best = 0.0
            for garment in person.garments:
                if garment.category_confidence < floor:
                    continue
                p = 1.0
                for t in constraint:
                    found = garment.terms.get(t.key)
                    if t.negated:  # (floor 0 only) an unlabelled field counts as 1 - 0
                        p *= 1.0 - found[0] if found is not None else 1.0
                    elif found is not None and found[1] >= floor:
                        p *= found[0]
                    else:
                        p = 0.0
                        break
                garment_best = max(garment_best, p)
            score *= garment_best
        for key in tight.absent:  # the least 1 - P over the garments it may be on (surely enough), 1 for none
            score *= min((1.0 - g.terms[key][0] for g in person.garments if key in g.terms
                          and g.category_confidence >= floor and g.terms[key][1] >= floor), default=1.0)
        for t in tight.expression:
            found = person.expression.get(t.key)
            if t.negated:
                score *= 1.0 - found[0] if found is not None else 1.0
            else:
                score *= found[0] if found is not None and found[1] >= floor else 0.0
        best = max(best, score)
    return best


def _pair_terms(constraint: GarmentConstraint) -> list[tuple[str, float, AttributeTerm]]:
    """(pair key, the two terms' similarity, the term paired with the category) of the constraint's
    category with each of its positive colour, pattern and sleeve terms, in that order."""
    category = next((t for t in constraint.terms if t.field == "category" and not t.negated), None)
    if category is None:
        return []
    return [(pair_key(category.value, t.value, t.field), _similarity(category) * _similarity(t), t)
            for name in PAIRED_FIELDS for t in constraint.terms if t.field == name and not t.negated]


def _similarity(term: AttributeTerm) -> float:
    return term.similarity if term.via == "semantic" else 1.0


def driver_keys(query: ParsedQuery, threshold: float = 0.0) -> list[tuple[str, float]]:
    """(bound key, the terms' similarity) of the lists a search walks (the first) and filters by (the
    rest): every positive term of the query's positive constraints and expression is in one of them;
    the salience alone when there is none. When the threshold reaches PAIR_FLOOR (combinations under it
    are not kept), a constraint's category with a colour and a pattern comes first as their triple's
    list, then each of its pairs with an expression term of the query, then the pairs of a category with
    a colour, pattern or sleeve, then single terms, each only if it covers a term none before it does:
    a combination's bound is at most each of its terms' bounds, on every moment, so the lists of terms
    it covers would add only reads."""
    candidates: list[tuple[str, float, tuple[AttributeTerm, ...]]] = []  # tightest first
    expressions = [t for t in query.person if not t.negated]
    if threshold >= PAIR_FLOOR:
        triples: list[tuple[str, float, tuple[AttributeTerm, ...]]] = []
        with_expression: list[tuple[str, float, tuple[AttributeTerm, ...]]] = []
        pairs: list[tuple[str, float, tuple[AttributeTerm, ...]]] = []
        for constraint in query.garments:
            if constraint.negated:
                continue
            paired = _pair_terms(constraint)
            category = next((t for t in constraint.terms if t.field == "category" and not t.negated), None)
            colour = next((t for _, _, t in paired if t.field == "color"), None)
            pattern = next((t for _, _, t in paired if t.field == "pattern"), None)
            if category is not None and colour is not None and pattern is not None:
                triples.append((triple_key(category.value, colour.value, pattern.value),
                                _similarity(category) * _similarity(colour) * _similarity(pattern),
                                (category, colour, pattern)))
            for key, similarity, term in paired:
                assert category is not None  # a pair has one
                with_expression += [(expression_key(key, e.value), similarity * _similarity(e), (category, term, e))
                                    for e in expressions]
                pairs.append((key, similarity, (category, term)))
        candidates = triples + with_expression + pairs
    terms = [t for constraint in query.garments if not constraint.negated for t in constraint.terms] + expressions
    candidates += [(bound_key(t.field, t.value), _similarity(t), (t,)) for t in terms if not t.negated]
    keys: list[tuple[str, float]] = []
    covered: set[int] = set()  # ids of the terms a listed key covers
    for key, similarity, of in candidates:
        if not {id(t) for t in of} <= covered and (key, similarity) not in keys:
            keys.append((key, similarity))
        covered.update(id(t) for t in of)
    return keys or [(SALIENCE_KEY, 1.0)]


def bound_is_score(request: SearchRequest) -> bool:
    """Whether the first bound list is the score itself (one exactly typed term, a category with a colour,
    pattern or sleeve, with both a colour and a pattern, or with one of them and an expression, or an
    empty query, and no filter the bounds do not know): then a backend can count the hits from its index
    alone."""
    query = request.query
    if request.min_confidence > 0 or request.strict or request.review_status is not None or not usable(query):
        return False
    terms = [t for c in query.garments for t in c.terms]
    if not terms and not query.person:
        return not query.garments
    if any(t.negated or t.via == "semantic" for t in [*terms, *query.person]) or any(c.negated for c in query.garments):
        return False
    if len(terms) + len(query.person) == 1:
        return True
    # "black jacket", "red striped dress", "smiling, in a floral skirt": the combination's bound is the
    # score (when the threshold lets combinations be kept)
    if len(query.garments) != 1 or request.threshold < PAIR_FLOOR:
        return False
    fields = sorted(t.field for t in terms)
    pair = len(terms) == 2 and fields[0] == "category" and fields[1] in PAIRED_FIELDS
    return ((pair and len(query.person) <= 1)
            or (fields == ["category", "color", "pattern"] and not query.person))


def tight_is_score(request: SearchRequest) -> bool:
    """Whether the tight bound (`tight_bound`) is the score of every hit, not only a bound of it: no
    negated term or constraint, no min_confidence, not strict (the other filters only drop hits). Then
    a page after a cursor holds no moment whose tight bound is above the cursor's score."""
    query = request.query
    return (not request.strict and request.min_confidence == 0 and not any(c.negated for c in query.garments)
            and not any(t.negated for t in [*(t for c in query.garments for t in c.terms), *query.person]))


# The most rows a bound list reads in one batch (batches double from the first up to it).
MAX_BATCH = 4000

# (bound, moment id, the moment's scoring view or None: `BoundList.load` reads it when needed,
# the moment's tight bound or None: not known)
Row = tuple[float, str, "Doc | str | None", "float | None"]


class BoundList:
    """One term's moments by descending bound, read in growing batches. `fetch(size)` gives the next
    rows (bound desc, each moment's bound reaching the request's threshold), whether more may follow,
    and the lowest bound it read (None: nothing; it may be below the rows' last when the backend
    dropped documents it read, an older run's); the backend keeps its own place in the list (SQL
    keyset, search_after). Rows may leave the view out and give the moment's tight bound instead:
    `load(ids)` then reads the views of those the walk scores."""

    def __init__(self, fetch: Callable[[int], tuple[Sequence[Row], bool, float | None]], similarity: float,
                 first: int, load: Callable[[list[str]], Mapping[str, Doc | str]] | None = None):
        self.fetch, self.similarity, self.size, self.load = fetch, similarity, first, load
        self.last: float | None = None
        self.exhausted = False
        self.read = 0

    def next_batch(self) -> Sequence[Row]:
        rows, more, last = self.fetch(self.size)
        self.read += len(rows)
        self.exhausted = not more
        if last is not None:
            self.last = last
        self.size = min(self.size * 2, MAX_BATCH)
        return rows

    @property
    def frontier(self) -> float:
        """The most an unread moment of this list can score."""
        if self.exhausted:
            return 0.0
        return (1.0 if self.last is None else self.last) * self.similarity * (1 + _SLACK)


@dataclass
class BoundSearch:
    """What `rank_by_bounds` found: the page, how many moment documents were read and scored (for tests
    and benches), and how many bound-list rows were walked to find them."""

    page: SearchPage
    read: int
    rows: int = 0


def rank_by_bounds(lists: Sequence[BoundList], request: SearchRequest,
                   full: Callable[[list[str]], Mapping[str, Moment]],
                   count: Callable[[], int] | None = None) -> BoundSearch:
    """The request's page from the bound lists of its positive terms (`driver_keys`); the same page
    `rank_documents` gives over every candidate. `count`, when the bound is the score
    (`bound_is_score`), counts the hits from the index; otherwise the total is exact only when a list
    was read to its end with every moment in it scored, and else the number of hits met
    (`SearchPage.total_exact` False). `full` gives the whole moments of the page's hits, by id, in one read.

    A row with a tight bound (`tight_bound`) is scored only when that bound can still reach the page: rows
    are taken best tight bound first, so a page is scored from about a page of documents."""
    after = decode_cursor(request.cursor, request) if request.cursor else None
    seen: set[str] = set()
    found: list[tuple[SortKey, tuple[Doc, _Evaluation]]] = []  # the best `wanted` hits after the cursor, sorted
    matched = skipped = scored = 0
    wanted = request.limit + 1
    done = False
    least = request.threshold / (1 + TIGHT_SLACK)

    def score(rows: Sequence[Row], bounds: BoundList) -> None:
        nonlocal matched, scored
        missing = [moment for _, moment, raw, _ in rows if raw is None]
        loaded = bounds.load(missing) if missing and bounds.load is not None else {}
        for _, moment, raw, _ in rows:
            raw = raw if raw is not None else loaded.get(moment)
            if raw is None:
                continue  # gone since the list was read (a run finished meanwhile)
            doc = from_json(raw) if isinstance(raw, str) else raw  # pydantic-core's parser: 2x json's
            scored += 1
            evaluation = _evaluate(doc, request)
            if evaluation is None:
                continue
            matched += 1
            key = document_key(evaluation.score, doc)
            if after is None or key > after:
                bisect.insort(found, (key, (doc, evaluation)), key=lambda item: item[0])
                del found[wanted:]

    while not done:
        for bounds in lists:
            fresh = [row for row in bounds.next_batch() if row[1] not in seen]
            seen.update(row[1] for row in fresh)
            # best tight bound first (rows without one first of all: they are scored in any case)
            fresh = [row for row in fresh if row[3] is None or row[3] >= least]
            fresh.sort(key=lambda row: -math.inf if row[3] is None else -row[3])
            i = 0
            while i < len(fresh):
                if len(found) < wanted:  # the page is not full: these are needed whatever they score
                    chunk = fresh[i: i + wanted - len(found)]
                else:
                    cutoff = -found[-1][0][0] / (1 + TIGHT_SLACK)
                    chunk = list(itertools.takewhile(lambda row: row[3] is None or row[3] >= cutoff,
                                                     fresh[i: i + 8]))
                    if not chunk:
                        skipped += len(fresh) - i  # none of the rest can reach the page
                        break
                score(chunk, bounds)
                i += len(chunk)
            if bounds.exhausted:
                done = True  # every possible hit is in this list (its bound is at least its score), all read
                break
        frontier = min(b.frontier for b in lists)
        if frontier < request.threshold:
            done = True  # nothing unread can reach the threshold
        elif len(found) == wanted and -found[-1][0][0] > frontier:
            break  # the page (and one more, for the cursor) beats anything unread
    exact = done and not skipped
    total = matched
    if count is not None:
        total, exact = count(), True

    page = [item for _, item in found[: request.limit]]
    moments = full([doc["moment_id"] for doc, _ in page])
    hits = [_hit(moments[doc["moment_id"]], evaluation, request.query) for doc, evaluation in page]
    more = len(found) > request.limit
    return BoundSearch(
        SearchPage(hits=hits, total=total, total_exact=exact,
                   next_cursor=encode_cursor(sort_key(hits[-1]), request) if more else None),
        read=scored, rows=sum(b.read for b in lists))
