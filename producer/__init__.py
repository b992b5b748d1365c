"""The HTTP intake: stores every request before it acknowledges it."""
