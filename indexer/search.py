"""Search over moments, backend-neutral: the request, the ranking function and the result page.

Every backend (embedded SQLite, Elasticsearch) answers a `SearchRequest` the same way: its own query
narrows the candidate moments with the structured constraints (a cheap superset), then
`rank_documents` decides and scores each candidate with the code behind `match_moment`, sorts and
pages them. Only that code says what matches, so two backends given the same moments give the same
page, and a backend's narrowing can never change a result, only how many moments it looked at.

What a query means (see indexer/query.py for the model):
- A positive `GarmentConstraint` needs one garment of the person on which all its terms hold. Two
  constraints may be met by the same garment ("red dress" + "striped dress" is one red striped
  dress as well), as a nested query per constraint does in Elasticsearch.
- A term holds on a garment when: `category` equals; `color` equals the primary OR the secondary
  colour; `pattern` / `sleeve` equal. A negated term holds when the field is labelled and the
  positive term does not hold (`color!=black`: the garment has a known colour, and neither its
  primary nor its secondary colour is black). An unlabelled field satisfies neither.
- A negated constraint ("without a hat") holds when no garment of the person meets all its terms.
- Expression terms hold on the person's summarised expression, with the same negation rule.
- `min_confidence`: a label less sure than it counts as absent. A garment whose category is below it
  is not there at all (so it neither meets a constraint nor blocks a negated one), a colour below it
  is unknown, and so on. When the query has no positive term, the hit rests on the person detection
  alone, and that must reach it.
- A moment with several persons matches when one person meets everything; the best one is reported.
- Text words never filter: they only add a bonus (below).

Score (documented here because both backends and the HTTP API show it):

    term     = label confidence x similarity   (similarity: the parser's cosine for a term mapped
                                                 by meaning, 1.0 for an exact word or a synonym)
    garment  = geometric mean of its terms' label confidences x product of their similarities
               (a negated term's label is the one found instead: "not black" on a red jacket
               counts the red label's confidence)
    person   = mean over the query's positive garment constraints (each: its best garment) and
               expression terms (each: its term score); the person detection confidence when the
               query has none (so an empty query ranks by detection)
    score    = person + TEXT_WEIGHT x (share of text words found among the moment's label words
               -- categories, colours, patterns, sleeves, expression -- or in the media file name)

The geometric mean keeps a constraint's score on the scale of one label however many terms it has
(a three-term "red striped dress" is not punished against "red dress"), while one doubtful label
still pulls it down. Negated constraints filter but do not score: absence has no confidence.

Order and pages: hits sort by (score desc, media_id, start, moment_id), a total order, and the cursor
is the last hit's sort key (base64 JSON, with a fingerprint of the request), so the next page is
"everything after that key": pages never repeat or skip a moment even when scores tie, and a
cursor given with another query is refused rather than silently misapplied.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from indexer.moments import Moment
from indexer.query import AttributeTerm, GarmentConstraint, ParsedQuery
from indexer.review import ReviewStatus
from labels import Box
from labels.vocabulary import GARMENT_LABEL_FIELDS

# The most a perfect text match adds: enough to order equally matched moments, too little to lift a
# weak constraint match over a strong one (label confidences differ by more than this in practice).
TEXT_WEIGHT = 0.1

MAX_LIMIT = 200


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
    """One query term and the label that satisfied it."""

    term: AttributeTerm
    label: str = Field(description="the label value found (for a negated term: the value that is not it)")
    confidence: float = Field(ge=0.0, le=1.0)


class MatchedGarment(_Model):
    """The garment chosen for one positive garment constraint of the query."""

    constraint: int = Field(ge=0, description="index into query.garments")
    category: str
    box: Box | None = Field(None, description="the garment's box in the moment's best frame, when seen there")
    terms: list[TermMatch]
    score: float


class MomentHit(_Model):
    """A moment that matched: the moment itself, its score, and what in it matched (for display)."""

    moment: Moment
    score: float
    person_index: int = Field(0, ge=0, description="which of moment.persons matched")
    matched: list[MatchedGarment] = []
    expression_matched: list[TermMatch] = Field([], description="one per expression term of the query")
    text_matched: list[str] = Field([], description="text words found in the moment's label words or media name")


class SearchPage(_Model):
    hits: list[MomentHit]
    total: int = Field(ge=0, description="hits of the whole search, all pages")
    next_cursor: str | None = None


# --- matching ----------------------------------------------------------------------------------
# The core reads a moment in its JSON form (Moment.model_dump(), or the stored document as parsed
# JSON): a backend scores thousands of candidates from plain dicts, ten times cheaper than
# validating each into a Moment, and builds models only for the hits of the page it returns.

Doc = Mapping[str, Any]  # a Moment, or one of its parts, in JSON form
_TermFound = tuple[AttributeTerm, str, float]  # term, label value found, its confidence


def has_positive_terms(query: ParsedQuery) -> bool:
    """Whether anything scores a hit (else the person detection does)."""
    return bool(query.person) or any(not g.negated for g in query.garments)


def _trusted(label: Doc | None, floor: float) -> Doc | None:
    return label if label is not None and label["confidence"] >= floor else None


def _term_on_labels(term: AttributeTerm, labels: list[Doc]) -> tuple[str, float] | None:
    """(label value, confidence) when `term` holds on a field with these trusted labels."""
    if not labels:
        return None  # unlabelled: neither "is" nor "is not"
    same = [label for label in labels if label["value"] == term.value]
    if not term.negated:
        if not same:
            return None
        best = max(same, key=lambda label: label["confidence"])
        return best["value"], best["confidence"]
    if same:
        return None
    best = max(labels, key=lambda label: label["confidence"])  # how sure we are what it is instead
    return best["value"], best["confidence"]


def _garment_match(garment: Doc, constraint: GarmentConstraint, floor: float) -> list[_TermFound] | None:
    """What satisfied each term when all the constraint's terms hold on this garment, else None."""
    if _trusted(garment["category"], floor) is None:
        return None  # a garment we are not sure is there
    found: list[_TermFound] = []
    for term in constraint.terms:
        fields = term.label_fields
        labels = [label for f in fields if (label := _trusted(garment.get(f), floor)) is not None]
        hit = _term_on_labels(term, labels)
        if hit is None:
            return None
        found.append((term, *hit))
    return found


def _terms_score(found: list[_TermFound]) -> float:
    """Geometric mean of the label confidences times the similarity of terms mapped by meaning."""
    if any(confidence <= 0.0 for _, _, confidence in found):
        return 0.0
    score = math.exp(sum(math.log(confidence) for _, _, confidence in found) / len(found))
    for term, _, _ in found:
        if term.via == "semantic":
            score *= term.similarity
    return score


@dataclass
class _Evaluation:
    """How a moment meets a query: the score and, kept light, what matched."""

    score: float
    person_index: int
    garments: list[tuple[int, int, list[_TermFound], float]]  # constraint, garment index, terms, score
    expressions: list[_TermFound]
    text: list[str] = field(default_factory=list)


def _evaluate_person(person: Doc, index: int, request: SearchRequest) -> _Evaluation | None:
    """How one person meets the query (before the text bonus), or None."""
    query, floor = request.query, request.min_confidence
    garments: list[tuple[int, int, list[_TermFound], float]] = []
    for c, constraint in enumerate(query.garments):
        best: tuple[int, list[_TermFound], float] | None = None
        for g, garment in enumerate(person["garments"]):
            found = _garment_match(garment, constraint, floor)
            if found is None:
                continue
            if constraint.negated:
                return None
            score = _terms_score(found)
            if best is None or score > best[2]:  # first of equals: stable
                best = (g, found, score)
        if constraint.negated:
            continue
        if best is None:
            return None
        garments.append((c, *best))

    expression = _trusted(person.get("expression"), floor)
    expressions: list[_TermFound] = []
    for term in query.person:
        hit = _term_on_labels(term, [expression] if expression is not None else [])
        if hit is None:
            return None
        expressions.append((term, *hit))

    parts = [score for *_, score in garments] + [_terms_score([e]) for e in expressions]
    if parts:
        return _Evaluation(sum(parts) / len(parts), index, garments, expressions)
    detection = person["detection"]["confidence"]
    return _Evaluation(detection, index, garments, expressions) if detection >= floor else None


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


_WORD = re.compile(r"[a-z0-9]+")


def _moment_words(doc: Doc, media_name: str) -> set[str]:
    """The words a text word may be found in: the moment's label values and the media file name."""
    values: list[str] = [media_name]
    for person in doc["persons"]:
        if person.get("expression") is not None:
            values.append(person["expression"]["value"])
        for garment in person["garments"]:
            values.extend(garment[f]["value"] for f in GARMENT_LABEL_FIELDS if garment.get(f) is not None)
    words: set[str] = set()
    for value in values:
        lowered = value.lower()
        words.add(_stem(lowered))
        words.update(_stem(w) for w in _WORD.findall(lowered))  # "coat/jacket" -> coat, jacket
    return words


def _evaluate(doc: Doc, request: SearchRequest, media_name: str) -> _Evaluation | None:
    """The one decision: whether the moment matches every filter of the request, and its score."""
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
    if best is None:
        return None
    text = request.query.text
    if text:
        words = _moment_words(doc, media_name)
        best.text = [w for w in text if _stem(w.lower()) in words]
        best.score += TEXT_WEIGHT * len(best.text) / len(text)
    return best


def _hit(moment: Moment, evaluation: _Evaluation) -> MomentHit:
    person = moment.persons[evaluation.person_index]
    matched = [
        MatchedGarment(constraint=c, category=person.garments[g].category.value, box=person.garments[g].box,
                       terms=[TermMatch(term=t, label=value, confidence=conf) for t, value, conf in found],
                       score=score)
        for c, g, found, score in evaluation.garments
    ]
    return MomentHit(
        moment=moment, score=evaluation.score, person_index=evaluation.person_index, matched=matched,
        expression_matched=[TermMatch(term=t, label=value, confidence=conf) for t, value, conf in evaluation.expressions],
        text_matched=evaluation.text,
    )


def match_moment(moment: Moment, request: SearchRequest, media_name: str = "") -> MomentHit | None:
    """THE ranking function: the hit for `moment` under `request` (score and evidence), or None.

    Applies every filter of the request (media, time range, constraints, min_confidence), so a
    backend may hand it any superset of the true candidates. `media_name` (the file name) is where
    text words are looked for besides the labels. `rank_documents` decides with the same code on
    the moment's JSON form.
    """
    evaluation = _evaluate(moment.model_dump(), request, media_name)
    return _hit(moment, evaluation) if evaluation is not None else None


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


def _key(evaluation: _Evaluation, doc: Doc) -> SortKey:
    return (-evaluation.score, doc["media_id"], float(doc["start"]), doc["moment_id"])


def _slim_label(label) -> dict | None:
    return {"value": label.value, "confidence": label.confidence} if label is not None else None


def scoring_view(moment: Moment) -> dict:
    """The parts of a moment the ranking reads, as JSON: a fifth of the full document, so a backend
    that stores it parses candidates faster (boxes and frame lists are only needed for the page).
    Persons and garments keep their order: hits point into them by index."""
    return {
        "moment_id": moment.moment_id, "media_id": moment.media_id, "start": moment.start, "end": moment.end,
        "review_status": moment.review_status,
        "persons": [
            {"detection": _slim_label(p.detection), "expression": _slim_label(p.expression),
             "garments": [{name: _slim_label(getattr(g, name)) for name in GARMENT_LABEL_FIELDS} for g in p.garments]}
            for p in moment.persons
        ],
    }


def rank_documents(docs: Iterable[tuple[Doc | str, str]], request: SearchRequest,
                   full: Callable[[Doc], Doc] | None = None) -> SearchPage:
    """The search over candidates, for backends: (moment in JSON form, as text or parsed, and its
    media file name) in, the page the request asks for out. Any superset of the true candidates
    gives the same page.

    Only each candidate's sort key is kept while scanning; the page's few hits are parsed and
    evaluated again to build their models. (Keeping thousands of parsed documents alive made the
    garbage collector, not the matching, the cost of a broad query.) Candidates may be scoring views
    (`scoring_view`): `full` then gives the whole moment of a page hit.
    """
    after = decode_cursor(request.cursor, request) if request.cursor else None
    total = 0
    rest: list[tuple[SortKey, Doc | str, str]] = []
    for raw, media_name in docs:
        doc = json.loads(raw) if isinstance(raw, str) else raw
        evaluation = _evaluate(doc, request, media_name)
        if evaluation is None:
            continue
        total += 1
        key = _key(evaluation, doc)
        if after is None or key > after:
            rest.append((key, raw, media_name))
    page = heapq.nsmallest(request.limit + 1, rest, key=lambda item: item[0])  # keys are unique
    more = len(page) > request.limit
    hits = []
    for _, raw, media_name in page[: request.limit]:
        doc = json.loads(raw) if isinstance(raw, str) else raw
        evaluation = _evaluate(doc, request, media_name)
        assert evaluation is not None  # ranked above: only documents that matched
        hits.append(_hit(Moment.model_validate(full(doc) if full else doc), evaluation))
    return SearchPage(hits=hits, total=total,
                      next_cursor=encode_cursor(sort_key(hits[-1]), request) if more else None)


def rank_moments(
    moments: Iterable[Moment], request: SearchRequest, media_names: Mapping[str, str] | None = None
) -> SearchPage:
    """The reference search: every moment given is a candidate. Tests compare a backend against it."""
    names = media_names or {}
    return rank_documents(((m.model_dump(), names.get(m.media_id, "")) for m in moments), request)
