"""queuert: MongoDB state adapter (PyMongo async API)."""
