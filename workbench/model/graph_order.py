"""The one topological sort: ONNX graphs rewritten by a converter or cut for analysis need their
nodes put back in an order where every tensor is produced before it is read; and the one map of
which nodes read each tensor."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import onnx


def topological_order(nodes: Sequence[onnx.NodeProto]) -> list[onnx.NodeProto] | None:
    """``nodes`` with producers before readers, ties kept in their given order; None on a cycle.

    Tensors no node produces (graph inputs, initializers, the empty name) count as available.
    """
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    waiting = [0] * len(nodes)
    readers: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for source in {producer[name] for name in node.input if name in producer and producer[name] != i}:
            waiting[i] += 1
            readers[source].append(i)
    ready = deque(i for i, count in enumerate(waiting) if count == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for reader in readers[i]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    return [nodes[i] for i in order] if len(order) == len(nodes) else None


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Every tensor name with the nodes that read it, in graph order."""
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users
