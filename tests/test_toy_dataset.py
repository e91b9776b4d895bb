"""Adding a dataset is one module: this file's `ToyDigits` (a registered Dataset subclass) gets
LMDBs from make lmdb's builder, generated prototxts, every stage of the synthetic workflow
with the real `caffe`, and a report, with no other change to the package."""
import os

import pytest

from noisy_label import datasets, paths
from noisy_label.datasets.digits import load_digits
from noisy_label.datasets.synthetic import SyntheticDataset, noise_options
from noisy_label.experiments import pipeline, report, stages

pytestmark = pytest.mark.caffe


class ToyDigits(SyntheticDataset):
    """The digits at another noise level, with a short schedule."""
    name = "toy_digits"
    num_classes = 10
    options = noise_options(num_clean=200, noise_level=0.3)
    tower = "digits"
    transform = {"scale": 0.00390625}
    train_batch, test_batch = 50, 100
    solver = dict(momentum=0.9, weight_decay=0.0005, display=10, average_loss=10,
                  lr_policy="step", gamma=0.1)
    schedules = {stage: dict(base_lr=0.01, stepsize=40, max_iter=60, test_interval=30,
                             snapshot=30)
                 for stage in ("clean", "noisy_gt_ft_clean", "ntype", "noisy_label_loss",
                               "relabel_ft_clean")}
    num_test = 500

    def load(self, data_root, opts, seed):
        return load_digits(seed), None


@pytest.fixture
def toy():
    datasets.register(ToyDigits)
    yield datasets.get_dataset("toy_digits")
    datasets.unregister("toy_digits")


def test_a_toy_dataset_runs_the_whole_workflow(toy, tmp_path):
    exp = str(tmp_path / "exp")
    summary = datasets.build("toy_digits", exp=exp, seed=1)
    assert summary["counts"][paths.TEST] == 500 and summary["noise_level"] == 0.3
    # The solvers derive test_iter from the dataset: 500 test digits / 100, 40 pairs / 100.
    _, messages = stages.experiment("toy_digits", exp)
    solver = messages[stages.solver_file_name("toy_digits", "clean")]
    assert list(solver.test_iter) == [5] and solver.max_iter == 60
    assert list(messages[stages.solver_file_name("toy_digits", "ntype")].test_iter) == [1]

    experiment = pipeline.Experiment("toy_digits", exp)
    experiment.run()
    for stage in stages.stage_nets("toy_digits", compare=False):
        assert os.path.exists(experiment.final(stage)), stage
    text = report.write("toy_digits", [experiment.exp], [1], str(tmp_path / "report"))
    assert "| ours |" in text and "| clean only |" in text


def test_unknown_datasets_are_named(toy):
    with pytest.raises(ValueError, match="unknown dataset 'toy'; expected one of: .*toy_digits"):
        datasets.get_dataset("toy")
