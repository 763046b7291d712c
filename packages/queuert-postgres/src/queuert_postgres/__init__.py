"""queuert: PostgreSQL state adapter (asyncpg) and LISTEN/NOTIFY notify adapter."""
