"""The commands of `pq`, grouped by what they work on."""
