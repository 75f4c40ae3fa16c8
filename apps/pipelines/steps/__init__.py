"""The weather pipeline's steps, one module each (`ingest`, `bronze`, `silver`, `gold`,
`finish`), combined into `apps.pipelines.weather.WeatherPipeline`; `base` holds what they share
(the lake's state, the run's report, reconciliation), `partitions` the layout of the date and
location partitions."""
