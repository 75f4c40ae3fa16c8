"""The model operations behind `python -m apps.training.ops` (see `apps.training.ops`), one
module each: `feedback` (the prediction log joined with gold's actuals), `decision` (the
champion/challenger statistics and what they move), `scoring` (the daily batch), `rollback` and
`drift`; `registry` holds the MLflow aliases and the champion history, `prediction_log` the
log's records, `models` the loading of an alias's model as the API loads it, and `common` what
they all share."""
