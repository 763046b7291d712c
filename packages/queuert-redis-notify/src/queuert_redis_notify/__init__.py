"""queuert notify adapter on Redis pub/sub (``redis.asyncio``).

Select it with a ``redis://`` or ``rediss://`` URL (see :func:`from_url`) or
build :class:`RedisNotifyAdapter` around your own ``redis.asyncio.Redis``.
"""

from queuert_redis_notify.adapter import RedisNotifyAdapter
from queuert_redis_notify.url import from_url

__all__ = ["RedisNotifyAdapter", "from_url"]
