"""queuert on MongoDB: the state adapter (PyMongo's async API, multi-document
transactions on a replica set) and a notify adapter on change streams."""

from queuert_mongodb.notify import MongoNotifyAdapter
from queuert_mongodb.state import MongoStateAdapter, MongoTx, from_url

__all__ = ["MongoNotifyAdapter", "MongoStateAdapter", "MongoTx", "from_url"]
