"""Throughput, latency and memory benchmarks of queuert and of two PostgreSQL job
queues doing the same work.

Run through the ``bench`` hatch environment (see ``benchmarks/README.md``);
nothing here is a runtime dependency of the queuert packages.
"""
