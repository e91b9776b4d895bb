"""make relabel's flag threshold (numpy only): THRESHOLD=auto|<p>|precision:<p> parsed with one
line for a bad value; the threshold chosen from labelled held-out pairs by F1 or a target
precision, and what those pairs then predict."""
import numpy as np
import pytest

from noisy_label.experiments import relabel


def test_threshold_text():
    assert relabel.parse_threshold("auto") == ("auto", None)
    assert relabel.parse_threshold("0.3") == ("fixed", 0.3)
    assert relabel.parse_threshold("precision:0.95") == ("precision", 0.95)
    for bad in ("1.5", "-0.1", "nan", "x", "precision:", "precision:0", "precision:2", "F1"):
        with pytest.raises(ValueError) as error:
            relabel.parse_threshold(bad)
        message = str(error.value)
        assert message.startswith("THRESHOLD must be auto, a number in [0, 1] or precision:<p>")
        assert repr(bad) in message and "\n" not in message


def test_f1_threshold_from_the_pairs_alone():
    # Six pairs: the three lowest p(label right) are the wrong labels, then a right one at 0.35
    # and a wrong one at 0.4: flagging below 0.375 gives precision 1 and recall 3/4 (F1 6/7);
    # below 0.45 precision 4/5, recall 1 (F1 8/9): the best.
    p = np.array([0.05, 0.1, 0.2, 0.35, 0.4, 0.9])
    wrong = np.array([True, True, True, False, True, False])
    chosen = relabel.choose_threshold(p, wrong)
    assert chosen["threshold"] == pytest.approx(0.65)
    assert (chosen["flagged"], chosen["wrong"], chosen["pairs"]) == (5, 4, 6)
    assert chosen["precision"] == pytest.approx(0.8) and chosen["recall"] == 1.0
    assert chosen["f1"] == pytest.approx(8 / 9)
    # ... the same pairs in another order choose the same; a ties goes to the one nearest 0.5.
    order = np.random.RandomState(0).permutation(6)
    assert relabel.choose_threshold(p[order], wrong[order]) == chosen
    # No wrong label among the pairs: nothing is worth flagging (threshold 0).
    assert relabel.choose_threshold(p, np.zeros(6, bool))["threshold"] == 0.0


def test_precision_target_takes_the_most_recall_that_reaches_it():
    p = np.array([0.05, 0.1, 0.2, 0.35, 0.4, 0.9])
    wrong = np.array([True, True, True, False, True, False])
    chosen = relabel.choose_threshold(p, wrong, "precision", 0.95)
    assert chosen["threshold"] == pytest.approx(0.275)        # below 0.35: precision 1
    assert chosen["precision"] == 1.0 and chosen["recall"] == pytest.approx(0.75)
    assert relabel.choose_threshold(p, wrong, "precision", 0.8)["threshold"] == pytest.approx(0.65)


def test_candidates_cover_every_way_of_flagging():
    candidates = relabel.candidate_thresholds(np.array([0.2, 0.2, 1.0, 0.6]))
    np.testing.assert_allclose(candidates, [0.0, 0.4, 0.8, 1.0])


def test_resolve_threshold():
    held_out = (np.array([0.05, 0.1, 0.2, 0.35, 0.4, 0.9]),
                np.array([True, True, True, False, True, False]))
    auto = relabel.resolve_threshold(("auto", None), held_out)
    assert auto["rule"] == "F1" and auto["threshold"] == pytest.approx(0.65)
    assert auto["held_out"]["precision"] == pytest.approx(0.8)
    fixed = relabel.resolve_threshold(("fixed", 0.3), held_out)
    assert fixed["threshold"] == 0.3 and fixed["held_out"]["recall"] == pytest.approx(0.75)
    fallback = relabel.resolve_threshold(("auto", None), None)
    assert fallback["threshold"] == 0.5 and "no held-out pairs" in fallback["note"]
