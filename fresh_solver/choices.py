"""The names a user may choose from (models, tuning and validation metrics, estimators), in a
module that imports nothing: the command line builds its parser from them without loading
OR-Tools (seconds: it imports pandas), and the modules that implement them import them from
here."""

MODELS = ("template", "baseline")
METRICS = ("time_to_target", "time_to_optimum", "objective_at_limit", "gap_integral")
# Not a metric: "choose by the template's shape" (fresh_solver.tuning.session.choose_metric).
AUTO_METRIC = "auto"
ESTIMATORS = ("GP", "RF", "ET", "random")
# What validation judges by; a tuning metric maps to one (validation_metric).
VALIDATION_METRICS = ("time_to_target", "gap_integral")


def validation_metric(tuning_metric: str) -> str:
    """The validation metric for a session tuned on ``tuning_metric``: the gap integral for
    the metrics of quality at the time limit (templates whose instances the limit does not
    prove), time to target for the time metrics."""
    return "gap_integral" if tuning_metric in ("gap_integral", "objective_at_limit") \
        else "time_to_target"
