"""What Elasticsearch ranks moments by: each moment's `scoring` fields, and the query that computes from
them, in the cluster, the score indexer.search's reference gives (`score_body`).

The score is a product of factors (indexer.search's docstring: the salience, each positive constraint's
best garment, each negated constraint, each expression term). A product is a sum of logs, and a bool
query's `must` clauses add their scores, so each factor is one clause scoring OFFSET + ln(factor). Lucene
refuses negative scores: a factor under e^-OFFSET scores 0, which bounds it from above, and a moment with
such a factor ranks below every moment without one. OFFSET is large (14) so that a factor's log is
exact for every probability that matters (from e^-14 up) and the cluster's score is the reference's,
not a bound of it: within float32 rounding (TIGHT_SLACK covers it) and e^-14 per garment of a negated
constraint; under e^-14 it is above the reference's, never below. That is what lets a ranked walk stop
after a page and one more whatever the query (strict mode, negations, min_confidence, terms mapped by
meaning), and start a later page at its cursor's score.

Fields (`scoring_fields`), per person (nested `scoring`) and per garment (nested `scoring.garments`):
- `lp.<key>`, `lq.<key>`: OFFSET + ln P(term) and OFFSET + ln(1 - P(term)) (at least 0) for every term
  the label makes possible (indexer.search.distribution; a colour: its names,
  indexer.search.colour_names, the better of the primary and secondary colour label's); `lp1`, `lq1`
  and `lp2`, `lq2`: a colour's from the primary and from the secondary label alone (under a
  min_confidence each counts only if its own label is sure enough). Person: its expression's terms,
  and `lp.salience` (OFFSET + ln salience).
- `label.<field>`: the label itself, `value` (keyword), `conf` and `lc` = OFFSET + ln conf: what strict
  mode scores with, what min_confidence tests, and whether a field is labelled at all (a negated term
  holds on labelled fields only). Person: `label.detection.conf` and `label.expression`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from indexer.query import VOCABULARY, AttributeTerm, GarmentConstraint
from indexer.search import SALIENCE_KEY, SearchRequest, bound_key, colour_names, distribution, salience
from labels.vocabulary import GARMENT_LABEL_FIELDS

OFFSET = 14.0
SCORING = "scoring"
GARMENTS = f"{SCORING}.garments"

# (P field, 1 - P field, the label field it comes from) of each label a term looks at
_PARTS = {"color": (("lp1", "lq1", "color"), ("lp2", "lq2", "secondary_color"))}


def log_factor(p: float) -> float:
    """A factor as the cluster adds it: OFFSET + ln p, and 0 (never negative) under e^-OFFSET."""
    return max(0.0, OFFSET + math.log(p)) if p > 0 else 0.0


# --- what each moment document carries ---------------------------------------------------------------


def _label_doc(label: Mapping[str, Any]) -> dict:
    return {"value": label["value"], "conf": label["confidence"], "lc": log_factor(label["confidence"])}


def _terms_of(field: str, label: Mapping[str, Any]) -> dict[str, float]:
    """Term key -> P for every term one label makes possible."""
    probabilities = distribution(label)
    if field in ("color", "secondary_color"):
        probabilities, field = colour_names(probabilities), "color"
    return {bound_key(field, value): min(1.0, p) for value, p in probabilities.items() if p > 0}


def _logs(terms: Mapping[str, float], p_name: str, q_name: str) -> dict[str, dict[str, float]]:
    # every P above 0 (under e^-OFFSET as 0: e^-OFFSET, above it), so the cluster matches what the reference does
    return {p_name: {k: log_factor(p) for k, p in terms.items()},
            q_name: {k: log_factor(1.0 - p) for k, p in terms.items()}}  # 0 where P is 1: 1 - P is 0 (at most e^-OFFSET)


def _colour_p(garment: Mapping[str, Any], key: str) -> float:
    """P of a colour term on the garment: the better of its primary and secondary colour label's."""
    return max((_terms_of(field, garment[field]).get(key, 0.0)
                for field in ("color", "secondary_color") if garment.get(field) is not None), default=0.0)


def scoring_fields(view: Mapping[str, Any]) -> list[dict]:
    """The moment's `scoring` field, from its scoring view (indexer.search.scoring_view): per person and garment."""
    out = []
    for person in view["persons"]:
        labels: dict[str, Any] = {"detection": {"conf": person["detection"]["confidence"]}}
        doc: dict[str, Any] = {"lp": {}, "lq": {}}
        if person.get("expression") is not None:
            labels["expression"] = _label_doc(person["expression"])
            doc = _logs(_terms_of("expression", person["expression"]), "lp", "lq")
        if log_factor(salience(person)) > 0:
            doc["lp"][SALIENCE_KEY] = log_factor(salience(person))
        doc["label"] = labels
        doc["garments"] = []
        for garment in person["garments"]:
            g: dict[str, Any] = {"lp": {}, "lq": {}, "lp1": {}, "lq1": {}, "lp2": {}, "lq2": {}, "label": {}}
            for field in GARMENT_LABEL_FIELDS:
                label = garment.get(field)
                if label is None:
                    continue
                g["label"][field] = _label_doc(label)
                terms = _terms_of(field, label)
                if field in ("color", "secondary_color"):  # each label's own, and the better of the two
                    g.update(_logs(terms, *(("lp1", "lq1") if field == "color" else ("lp2", "lq2"))))
                    terms = {k: _colour_p(garment, k) for k in terms}
                for name, values in _logs(terms, "lp", "lq").items():
                    g[name].update(values)
            doc["garments"].append(g)
        out.append(doc)
    return out


def mapping() -> dict:
    """The `scoring` field's mapping: doubles for the logs and confidences, keywords for the values."""
    def doubles(fields: Sequence[str], extra: Sequence[str] = ()) -> dict:
        keys = [bound_key(name, value) for name in fields for value in VOCABULARY[name]] + list(extra)  # type: ignore[index]
        return {"properties": {key: {"type": "double"} for key in keys}}

    def labels(fields: Sequence[str]) -> dict:
        label = {"properties": {"value": {"type": "keyword"}, "conf": {"type": "double"}, "lc": {"type": "double"}}}
        return {"properties": {field: label for field in fields}}

    garment_terms = doubles(("category", "color", "pattern", "sleeve"))
    colours = doubles(("color",))
    return {"type": "nested", "properties": {
        "lp": doubles(("expression",), (SALIENCE_KEY,)), "lq": doubles(("expression",)),
        "label": labels(("detection", "expression")),
        "garments": {"type": "nested", "properties": {
            "lp": garment_terms, "lq": garment_terms, "lp1": colours, "lq1": colours, "lp2": colours, "lq2": colours,
            "label": labels(GARMENT_LABEL_FIELDS)}},
    }}


# --- the query -----------------------------------------------------------------------------------


def _sure(field: str, floor: float) -> dict:
    """The label at `field` (its `conf`) is there, and at least `floor` sure."""
    return {"range": {field: {"gte": floor}}} if floor > 0 else {"exists": {"field": field}}


def _all(filters: list[dict]) -> dict:
    return filters[0] if len(filters) == 1 else {"bool": {"filter": filters}}


def _any(queries: list[dict]) -> dict:
    return queries[0] if len(queries) == 1 else {"bool": {"should": queries, "minimum_should_match": 1}}


def _factor(field: str, missing: float | None = None) -> dict:
    factor: dict[str, Any] = {"field": field}
    if missing is not None:
        factor["missing"] = missing
    return {"field_value_factor": factor}


def _scored(filters: list[dict], functions: list[dict], mode: str, must_not: list[dict] | None = None) -> dict:
    """Matches what the filters allow (and `must_not` excludes), scored by `functions` combined by `mode`
    (each function applies where its own filter holds)."""
    query: dict[str, Any] = {"filter": filters}
    if must_not:
        query["must_not"] = must_not
    return {"function_score": {"query": {"bool": query}, "functions": functions, "score_mode": mode,
                               "boost_mode": "replace"}}


def _term(term: AttributeTerm, path: str, floor: float, strict: bool) -> dict:
    """One term on one garment (or, for an expression, the person): OFFSET + ln of the factor
    indexer.search._term_on gives it, the term's similarity aside (the caller's scale)."""
    key = bound_key(term.field, term.value)
    parts = _PARTS.get(term.field, (("lp", "lq", term.field),))
    labelled = [_sure(f"{path}.label.{field}.conf", floor) for _, _, field in parts]
    if strict:
        # the top label alone, at its confidence; negated: labelled and not it, as sure as the surest label
        top = [_all([{"term": {f"{path}.label.{field}.value": term.value}}, sure])
               for (_, _, field), sure in zip(parts, labelled)]
        scored = top if not term.negated else labelled
        functions = [{"filter": on, **_factor(f"{path}.label.{field}.lc")} for (_, _, field), on in zip(parts, scored)]
        return _scored([_any(scored)], functions, "max", must_not=top if term.negated else None)
    # (Without a floor or strict mode a garment's terms are one function_score of their own: `_garment`.)
    if term.negated:  # 1 - P of the label that makes P highest: the least lq of the labels sure enough
        functions = [{"filter": sure, **_factor(f"{path}.{q}.{key}", missing=OFFSET)}
                     for (_, q, _), sure in zip(parts, labelled)]
        return _scored([_any(labelled)], functions, "min")
    present = [_all([{"exists": {"field": f"{path}.{p}.{key}"}}, sure]) for (p, _, _), sure in zip(parts, labelled)]
    functions = [{"filter": on, **_factor(f"{path}.{p}.{key}")} for (p, _, _), on in zip(parts, present)]
    return _scored([_any(present)], functions, "max")


def _garment(constraint: GarmentConstraint, floor: float, strict: bool) -> dict:
    """A garment meeting every term of the constraint, scored by the sum of their clauses (a garment
    whose category is less sure than the floor is not there)."""
    if floor == 0 and not strict:
        # the common case in one function_score summing the stored logs (a colour's `lp` and `lq` are
        # its better label's), the shape with the fewest clauses for the cluster to evaluate
        filters, functions = [], []
        for t in constraint.terms:
            key = bound_key(t.field, t.value)
            if t.negated:  # on a labelled field only; 1 - 0 where the label cannot be it
                filters.append(_any([{"exists": {"field": f"{GARMENTS}.label.{f}.conf"}} for f in t.label_fields]))
                functions.append(_factor(f"{GARMENTS}.lq.{key}", missing=OFFSET))
            else:
                filters.append({"exists": {"field": f"{GARMENTS}.lp.{key}"}})
                functions.append(_factor(f"{GARMENTS}.lp.{key}"))
        return _scored(filters, functions, "sum")
    query: dict[str, Any] = {"must": [_term(t, GARMENTS, floor, strict) for t in constraint.terms]}
    if floor > 0:
        query["filter"] = [_sure(f"{GARMENTS}.label.category.conf", floor)]
    return {"bool": query}


def _similarity(terms: Sequence[AttributeTerm]) -> float:
    return math.prod(t.similarity for t in terms if t.via == "semantic")


# One garment's contribution to a negated constraint, -ln(1 - p) with p the probability that it meets the
# constraint (from the sum of its terms' clauses), at most OFFSET (a factor of e^-OFFSET at least).
_NOT_ON_GARMENT = "Math.min(params.o, -Math.log(Math.max(1e-300, 1 - params.s * Math.exp(_score - params.k))))"
_NONE_OF = "Math.max(0, params.o - _score)"  # OFFSET + ln of the product of the garments' (1 - p)


def _script(source: str, **params: float) -> dict:
    return {"script_score": {"script": {"source": source, "params": params}}}


def _without(constraint: GarmentConstraint, floor: float) -> dict:
    """A negated constraint's clause: OFFSET + ln of the product over the person's garments of (1 - the
    probability that the garment meets it); OFFSET for a person with no garment that may."""
    garment = _garment(constraint, floor, strict=False)
    each = {"function_score": {"query": garment, "boost_mode": "replace", "functions": [_script(
        _NOT_ON_GARMENT, o=OFFSET, s=_similarity(constraint.terms), k=OFFSET * len(constraint.terms))]}}
    product = {"function_score": {"query": {"nested": {"path": GARMENTS, "score_mode": "sum", "query": each}},
                                  "functions": [_script(_NONE_OF, o=OFFSET)], "boost_mode": "replace"}}
    none = {"constant_score": {"filter": {"bool": {"must_not": [{"nested": {"path": GARMENTS, "query": garment}}]}},
                               "boost": OFFSET}}
    return _any([product, none])


def score_body(request: SearchRequest) -> tuple[dict, int, float]:
    """The query that scores each moment with the reference's score in log space, the number of
    clauses it adds (the score is OFFSET x clauses + ln(score / scale)), and `scale`, the product of the
    similarities of the terms mapped by meaning outside negated constraints. Per person (nested, the best
    one): its salience, each positive constraint's best garment (nested, `score_mode: max`), each negated
    constraint's product over garments (nested, `score_mode: sum` of -ln(1 - p), turned back by a script;
    strict mode: a `must_not`) and each expression term."""
    query, floor, strict = request.query, request.min_confidence, request.strict
    person_filters = [{"exists": {"field": f"{SCORING}.lp.{SALIENCE_KEY}"}}]
    if floor > 0:
        person_filters.append(_sure(f"{SCORING}.label.detection.conf", floor))
    must: list[dict] = [{"function_score": {"query": {"bool": {"filter": person_filters}}, "boost_mode": "replace",
                                            "functions": [_factor(f"{SCORING}.lp.{SALIENCE_KEY}")]}}]
    must_not: list[dict] = []
    clauses, scaled = 1, []
    for constraint in query.garments:
        if not constraint.negated:
            must.append({"nested": {"path": GARMENTS, "score_mode": "max",
                                    "query": _garment(constraint, floor, strict)}})
            clauses += len(constraint.terms)
            scaled += constraint.terms
        elif strict:  # no garment may meet it at all
            must_not.append({"nested": {"path": GARMENTS, "query": _garment(constraint, floor, strict)}})
        else:
            must.append(_without(constraint, floor))
            clauses += 1
    for term in query.person:
        must.append(_term(term, SCORING, floor, strict))
        clauses += 1
        scaled.append(term)
    person: dict[str, Any] = {"must": must}
    if must_not:
        person["must_not"] = must_not
    return {"nested": {"path": SCORING, "score_mode": "max", "query": {"bool": person}}}, clauses, _similarity(scaled)
