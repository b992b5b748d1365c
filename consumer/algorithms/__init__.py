"""Algorithms the consumer can run: each takes a JSON payload and returns a JSON result."""
