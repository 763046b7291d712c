"""Reference adapters that keep everything in this process: the in-memory state
adapter and the in-process notify adapter. Useful for tests, demos and as the
model for adapter authors; ``queuert.conformance`` holds them to the port
contracts."""

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction

__all__ = ["InProcessNotifyAdapter", "MemoryStateAdapter", "MemoryTransaction"]
