"""Answer normalisation, exact match, token F1, gold recall and numbers as values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modules import textnorm


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("The Éclair-Café!", "eclair cafe"),
        ("  an   Apple, a pear ", "apple pear"),
        ("7,531 people", "7531 people"),
        ("1,2345", "1 2345"),  # not a thousands separator: the comma becomes a space
        ("“Quoted” – dash", "quoted dash"),
        (None, ""),
    ],
)
def test_normalize(text, norm):
    assert textnorm.normalize(text) == norm


def test_exact_match_needs_a_non_empty_prediction():
    assert textnorm.exact_match("the Beatles", "Beatles")
    assert not textnorm.exact_match("", "")
    assert not textnorm.exact_match("The", "the")  # only an article: empty after normalising


def test_token_f1_and_best_match_over_aliases():
    assert textnorm.token_f1("Ada Venn", "Ada Venn") == 1.0
    assert textnorm.token_f1("Ada", "Ada Venn") == pytest.approx(2 / 3)
    assert textnorm.token_f1("Osric", "Ada Venn") == 0.0
    em, f1 = textnorm.best_match("A. Venn", ["", "Ada Venn", "Venn"])
    assert em and f1 == 1.0
    assert textnorm.best_match("x", []) == (False, 0.0)


def test_gold_recall_ignores_function_words_unless_that_is_all_there_is():
    assert textnorm.gold_recall("It was the Bank of England.", "Bank of England") == 1.0
    assert textnorm.gold_recall("the bank", "Bank of England") == 0.5
    assert textnorm.gold_recall("of", "of") == 1.0
    assert textnorm.gold_recall("anything", "") == 0.0


def test_contains_answer_matches_whole_phrases_only():
    assert textnorm.contains_answer("Who, like Ada Venn, wrote it?", "ada venn")
    assert not textnorm.contains_answer("Who wrote Adamant?", "Ada")


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("7,531", {Decimal(7531)}),
        ("7531.0 and 7531", {Decimal(7531)}),
        ("3 million", {Decimal(3_000_000)}),
        ("2.5 billion", {Decimal(2_500_000_000)}),
        ("twenty or ninety", {Decimal(20), Decimal(90)}),
        ("v1.2.3", set()),  # a version string is not a number after a word character
        ("", set()),
    ],
)
def test_numbers_are_values(text, values):
    assert textnorm.numbers(text) == values
