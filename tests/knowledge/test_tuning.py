"""When a shop-tuned encoder replaces the general one: only for a gain its held-out pairs can show."""

from knowledge.training.tuning import compare


def test_one_paraphrase_more_is_not_enough_to_switch_models() -> None:
    # The demo shop's case: of 24 held-out pairs the tuned model ranks one better, none worse,
    # and yet it ranks the customers' own questions worse (knowledge/training/tuning.py).
    base = [1.0] * 22 + [0.5, 0.5]
    tuned = [1.0] * 23 + [0.5]
    comparison = compare(base, tuned)
    assert (comparison.better, comparison.worse) == (1, 0)
    assert not comparison.beyond_chance


def test_a_consistent_gain_switches_models() -> None:
    base = [1.0] * 18 + [0.5] * 4 + [0.25, 0.0]
    tuned = [1.0] * 24
    comparison = compare(base, tuned)
    assert (comparison.better, comparison.worse) == (6, 0)
    assert comparison.beyond_chance
    assert comparison.p_value < 0.02


def test_paraphrases_both_models_rank_alike_say_nothing() -> None:
    assert not compare([1.0] * 30, [1.0] * 30).beyond_chance
    # Five gains among many ties count as much as five gains alone.
    assert compare([0.5] * 5 + [1.0] * 95, [1.0] * 100).p_value == compare([0.5] * 5, [1.0] * 5).p_value
