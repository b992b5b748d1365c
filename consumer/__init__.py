"""The worker process that runs the licensed algorithm, one job at a time."""
