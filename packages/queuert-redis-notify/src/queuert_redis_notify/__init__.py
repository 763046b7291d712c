"""queuert: Redis pub/sub notify adapter (redis.asyncio)."""
