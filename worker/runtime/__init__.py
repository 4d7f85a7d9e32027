"""The process runtime: the step pool, its child processes, Prometheus metrics, a worker subprocess."""
