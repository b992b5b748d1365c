"""The `pq` command-line tool for operators."""
