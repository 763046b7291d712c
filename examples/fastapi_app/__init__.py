"""A FastAPI + SQLAlchemy application that starts queuert chains in its own sessions.

- ``models``: the application's ORM table (``images``).
- ``chains``: the image chain and its step.
- ``web``: the API (upload, status), ``uvicorn examples.fastapi_app.web:app``.
- ``worker``: the worker process, ``python -m examples.fastapi_app.worker``.

Both read ``DATABASE_URL`` (an SQLAlchemy URL: ``postgresql+asyncpg://...`` or
``sqlite+aiosqlite:///app.db``); queuert's adapter uses the same database.
"""
