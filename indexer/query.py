"""The backend-neutral query model: what a search asks for, in the label vocabulary.

The query parser (indexer/query_parser.py) turns free text into a `ParsedQuery`; each index
backend (embedded SQLite, Elasticsearch) translates it into its own query. The model keeps what a
backend needs to get "red striped dress" right: the terms of one `GarmentConstraint` must all hold on
the same garment (not red shirt + striped skirt), and negation is explicit at both levels ("without a
hat" is a person with no such garment; "not black" is a garment whose colour is not black).

Every term also records the query words it came from and how they were mapped (exact word, synonym
table, or nearest vocabulary word by meaning, with its similarity), so the HTTP response can show
the interpretation and a backend may weigh a guessed term less than a typed one.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from labels.vocabulary import LABEL_VOCABULARY, has_sleeves

AttributeField = Literal["category", "color", "pattern", "sleeve", "expression"]
GarmentField = Literal["category", "color", "pattern", "sleeve"]

# The words each field can take; a term with any other value is refused.
VOCABULARY: dict[AttributeField, tuple[str, ...]] = {field: LABEL_VOCABULARY[field] for field in get_args(AttributeField)}
GARMENT_FIELDS: tuple[GarmentField, ...] = ("color", "pattern", "sleeve", "category")

# The order terms are shown in: adjectives before the noun, as the user would say it.
_FIELD_ORDER = {name: i for i, name in enumerate((*GARMENT_FIELDS, "expression"))}


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeTerm(_Query):
    """One label condition: `field` is (or, when negated, is not) `value`.

    For `color`, a backend should match the garment's primary or secondary colour.
    """

    field: AttributeField
    value: str
    negated: bool = False
    source: str = Field(description="the query words the term came from, as typed (lower-cased)")
    via: Literal["exact", "synonym", "semantic"] = "exact"
    similarity: float = Field(1.0, ge=-1.0, le=1.0, description="cosine similarity for `semantic`, else 1.0")

    @model_validator(mode="after")
    def _check(self) -> AttributeTerm:
        if self.value not in VOCABULARY[self.field]:
            raise ValueError(f"{self.value!r} is not a {self.field}; known: {', '.join(VOCABULARY[self.field])}")
        if self.via != "semantic" and self.similarity != 1.0:
            raise ValueError(f"a term mapped by {self.via} has similarity 1.0, got {self.similarity}")
        return self

    @property
    def label_fields(self) -> tuple[str, ...]:
        """The garment label fields the term looks at: a colour is the primary or the secondary one."""
        return ("color", "secondary_color") if self.field == "color" else (self.field,)

    def in_words(self) -> str:
        """"black", "not striped", "long-sleeve", "happy": the term as a person would say it."""
        word = f"{self.value}-sleeve" if self.field == "sleeve" and self.value != "sleeveless" else self.value
        if self.field == "expression":
            word = f"looking {word}" if self.value in ("happy", "sad", "angry") else f"showing {word}"
        return f"not {word}" if self.negated else word

    def describe(self) -> str:
        text = f"{self.field}{'!=' if self.negated else '='}{self.value}"
        if self.via == "semantic":  # a guess: show what it was guessed from
            text += f' (from "{self.source}", {self.similarity:.2f})'
        return text


class GarmentConstraint(_Query):
    """Terms that must all hold on one and the same garment of a person.

    With `negated`, the person must have no garment on which all the terms hold ("without a hat",
    "no red scarf"). A constraint without a category term matches any garment ("someone in red").
    """

    terms: list[AttributeTerm] = Field(min_length=1)
    negated: bool = False

    @model_validator(mode="after")
    def _check(self) -> GarmentConstraint:
        if any(term.field == "expression" for term in self.terms):
            raise ValueError("an expression belongs to the person, not to a garment")
        categories = [t.value for t in self.terms if t.field == "category" and not t.negated]
        if len(categories) > 1:
            raise ValueError(f"one garment cannot be several categories at once: {', '.join(categories)}")
        if categories and not has_sleeves(categories[0]) and any(t.field == "sleeve" for t in self.terms):
            raise ValueError(f"a {categories[0]} has no sleeves to describe")
        return self

    @property
    def category(self) -> str | None:
        return next((t.value for t in self.terms if t.field == "category" and not t.negated), None)

    def in_words(self) -> str:
        """"red striped dress", "black garment", "no hat": the constraint as a person would say it."""
        terms = sorted(self.terms, key=lambda t: _FIELD_ORDER[t.field])
        words = [t.in_words() for t in terms if not (t.field == "category" and not t.negated)]
        words.append(self.category.replace("/", " or ") if self.category else "garment")
        return f"{'no ' if self.negated else ''}{' '.join(words)}"

    def describe(self) -> str:
        terms = sorted(self.terms, key=lambda t: _FIELD_ORDER[t.field])
        inner = ", ".join(t.describe() for t in terms)
        return f"{'no ' if self.negated else ''}garment({inner})"


class ParsedQuery(_Query):
    """A whole search: garment constraints (all must hold, each on some garment of the same person),
    person-level terms (facial expression) and leftover words for full-text relevance.

    `interpretation` is the readable line shown with the results; it is derived from the rest and
    filled in when not given (a given one must match).
    """

    garments: list[GarmentConstraint] = []
    person: list[AttributeTerm] = []
    text: list[str] = []
    interpretation: str = ""

    @model_validator(mode="after")
    def _interpret(self) -> ParsedQuery:
        if any(term.field != "expression" for term in self.person):
            raise ValueError("person terms are expressions; garment attributes go into a GarmentConstraint")
        expected = self.describe()
        if not self.interpretation:
            self.interpretation = expected
        elif self.interpretation != expected:
            raise ValueError(f"interpretation {self.interpretation!r} does not describe the query ({expected!r})")
        return self

    @property
    def is_empty(self) -> bool:
        return not (self.garments or self.person or self.text)

    def in_words(self) -> str:
        """"black garment, no hat, looking happy": what is searched for, in words (the words the search
        could not use are left out: see indexer.search.query_notice)."""
        parts = [g.in_words() for g in self.garments] + [t.in_words() for t in self.person]
        if parts:
            return ", ".join(parts)
        return "nothing (no word of the query is something Vestis labels)" if self.text else "anyone"

    def describe(self) -> str:
        parts = [g.describe() for g in self.garments]
        if self.person:
            parts.append(f"person({', '.join(t.describe() for t in self.person)})")
        if self.text:
            parts.append(f'text("{" ".join(self.text)}")')
        return " AND ".join(parts) or "anything"
