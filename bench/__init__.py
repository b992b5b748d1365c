"""The benchmark harness: pqueue measured beside the raw drivers and the queues a user would pick instead.

`bench/run` (or `python -m bench`) writes bench/RESULTS.md; see its top for how to run it.
"""
