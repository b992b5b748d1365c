"""The HTTP intake: stores every request before it acknowledges it.

`create_app(settings)` builds the FastAPI app; `pq-producer` serves it with uvicorn.
"""

from producer.app import create_app

__all__ = ["create_app"]
