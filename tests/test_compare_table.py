"""compare.md from compare.json's content (no Caffe): the best mean in bold, ours ranked, and
a warning only where a method ended near chance or its training loss went negative."""
from noisy_label.experiments import compare


def row(stage, role, accuracies, lowest):
    mean = sum(accuracies) / len(accuracies)
    std = (sum((a - mean) ** 2 for a in accuracies) / len(accuracies)) ** 0.5
    return {"stage": stage, "role": role, "seeds": {"1": accuracies[0], "2": accuracies[1]},
            "mean": mean, "std": std, "lowest_train_loss": {"1": lowest[0], "2": lowest[1]}}


def test_markdown_bolds_the_best_ranks_ours_and_warns_where_due():
    compared = {"dataset": "digits", "tested_on": "test", "chance": 0.1, "seeds": [1, 2],
                "methods": {"clean only": row("clean", "clean", [0.8, 0.9], [0.1, 0.2]),
                            "ours": row("noisy_label_loss", "ours", [0.9, 0.92], [0.3, None]),
                            "backward": row("backward_corrected", "backward", [0.1, 0.12],
                                            [-3.5, 1.0]),
                            "forward": row("forward_corrected", "forward", [0.95, 0.93],
                                           [0.4, 0.5])}}
    text = compare.markdown(compared)
    assert "| method | stage | mean ± std | seed 1 | seed 2 |" in text
    assert "| forward | forward_corrected | **0.9400 ± 0.0100** | 0.9500 | 0.9300 |" in text
    assert "| ours | noisy_label_loss | 0.9100 ± 0.0100 | 0.9000 | 0.9200 |" in text
    assert "Ours ranks 2 of 4 by mean (0.9100; best: forward, 0.9400)." in text
    warnings = [line for line in text.splitlines() if line.startswith(tuple(compared["methods"]))
                and ": " in line and not line.startswith("|")]
    assert warnings == ["backward: ends near chance (0.10). Its training loss went negative "
                        "(lowest -3.50 at seed 1): the loss is unbounded below, so training "
                        "can drive it down without fitting the labels."]
