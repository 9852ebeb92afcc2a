"""The wa-billing benchmark: ``python -m bench`` (see ``bench/__main__.py`` and RESULTS.md).

Ingest through gunicorn, drain by the processor's workers, the naive one-job-per-event design,
the bare atomic-apply ceiling, Redis commands and memory per event, all against a real Redis,
with the records checked against what the generated traffic must produce after every run.
"""
