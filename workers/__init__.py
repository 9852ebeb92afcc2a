"""RQ side: the drain job, the janitor, and the worker entry point."""
