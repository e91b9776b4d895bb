"""SET="key=value ...": settings that change a dataset's generated prototxts (batch sizes,
test iterations, any plain solver field, for every stage or one)."""
import math

# What SET="key=value ..." may change: the dataset's batch sizes and test iterations, and any
# plain solver field (for every stage, or one: "clean.max_iter=2000").
DATASET_SETTINGS = ("train_batch", "test_batch", "test_iter")
SOLVER_FIELDS = ("base_lr", "lr_policy", "gamma", "power", "stepsize", "max_iter", "momentum",
                 "weight_decay", "snapshot", "display", "average_loss", "test_interval",
                 "test_initialization", "iter_size", "clip_gradients", "type", "delta",
                 "momentum2", "rms_decay")

# A learning rate of 0 or below trains nothing or climbs the loss.
POSITIVE_FIELDS = ("base_lr",)


def parse(text: str, stages) -> dict:
    """{key: value} of SET="train_batch=64 max_iter=2000 clean.snapshot=100" for a dataset
    whose training stages are `stages`; ValueError naming the item that is not one."""
    import yaml
    settings = {}
    for item in (text or "").split():
        key, sep, value = item.partition("=")
        stage, _, field = key.rpartition(".")
        if not sep or not value:
            raise ValueError("SET: %r is not key=value" % item)
        if stage and stage not in stages:
            raise ValueError("SET: %r: no stage %r (stages: %s)"
                             % (item, stage, ", ".join(stages)))
        if field not in SOLVER_FIELDS and (stage or field not in DATASET_SETTINGS):
            raise ValueError("SET: %r: unknown setting %r; settings: %s, or a solver field "
                             "(%s), optionally for one stage as <stage>.<field>"
                             % (item, field, ", ".join(DATASET_SETTINGS), ", ".join(SOLVER_FIELDS)))
        try:
            settings[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError("SET: %r: %r is not a value" % (item, value))
        value = settings[key]
        if isinstance(value, str) and _number(value) is not None:
            value = settings[key] = float(value)   # YAML 1.1 reads 1e-3 as a string
        if field in DATASET_SETTINGS + ("max_iter", "snapshot", "stepsize") and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError("SET: %r: %s must be a positive integer" % (item, field))
        number = _number(value)
        if number is not None and not math.isfinite(number):
            raise ValueError("SET: %r: %s must be a finite number" % (item, field))
        if field in POSITIVE_FIELDS and not (number is not None and number > 0):
            raise ValueError("SET: %r: %s must be a number above 0" % (item, field))
    return settings


def _number(value):
    """A setting's value as a float when it is a number (YAML reads 1e-3 as a string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
