"""Algorithms the consumer can run: each takes a JSON payload and returns a JSON result.

`iqr` (the default) analyses readings per vendor, `stamp` prepends a timestamp to a file in the
inbox, `add` adds two numbers, `sleep` takes as long as its payload says (to watch a long job).
Any importable `module:function` works (see docs/consumer.md).
"""
