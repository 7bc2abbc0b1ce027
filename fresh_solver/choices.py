"""The names a user may choose from (models, tuning metrics, estimators), in a module that
imports nothing: the command line builds its parser from them without loading OR-Tools
(seconds: it imports pandas), and the modules that implement them import them from here."""

MODELS = ("template", "baseline")
METRICS = ("time_to_target", "time_to_optimum", "objective_at_limit", "gap_integral")
ESTIMATORS = ("GP", "RF", "ET", "random")
