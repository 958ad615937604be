"""Which channels of an ONNX graph must be pruned together, and what each removal touches.

Removing output channel c of a Conv is only valid if every tensor that carries channel c loses it
too: the BatchNorm after it, the residual Add partner (and that partner's producer), the next
layer's input weights, a Concat's slice, a Flatten's block of features. No library tracks this on
ONNX graphs, so this module walks the graph once in topological order, labels each tensor's channel
axis with the *groups* its channels belong to (union-find: tensors joined by an Add share one
group), and records every constant that must be sliced. Anything it cannot follow (a LayerNorm over
channels, a Reshape into attention heads, a graph output) *blocks* the groups involved with a reason,
so those layers stay whole rather than being pruned wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from workbench.pruning.graph_index import GraphIndex, WeightLayer, attribute, weight_layers

#: One output per input, channel for channel.
UNARY = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf", "Gelu", "Elu",
    "Selu", "Celu", "Softplus", "Softsign", "Mish", "Identity", "Dropout", "Cast", "Neg", "Abs", "Exp",
    "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "ThresholdedRelu",
    "Clip", "Swish",
}
#: Broadcasting element-wise ops: per-channel constants are sliced, activations are coupled.
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"}
#: Spatial pooling over NCHW: channels pass straight through.
POOLING = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceSumSquare", "ReduceLogSumExp"}


@dataclass
class Group:
    """Channels that must be kept or removed together, across every producer that writes them."""

    size: int
    producers: list[WeightLayer] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    fixed: bool = False  # channels that come from no prunable layer (graph input, Concat partner)


@dataclass(frozen=True)
class Layout:
    """Where a tensor's channels are and which groups they come from.

    ``segments`` lists (group id, factor) in order along ``axis``: a Concat makes several segments,
    a Flatten multiplies the factor (channel c becomes features c*f .. c*f+f-1).
    """

    axis: int
    rank: int
    segments: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SliceAction:
    """Keep only the surviving channels of ``layout`` along ``axis`` of the constant at node[slot]."""

    node: onnx.NodeProto
    slot: int
    axis: int
    segments: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ShapeAction:
    """A Reshape target holding an explicit channel count that must shrink with the channels."""

    node: onnx.NodeProto
    slot: int
    position: int
    segments: tuple[tuple[int, int], ...]


@dataclass
class ChannelPlan:
    """Everything channel pruning needs: groups, tensor layouts and the edits each group implies."""

    groups: list[Group]
    parent: list[int]
    layouts: dict[str, Layout]
    slices: list[SliceAction]
    depthwise: list[tuple[onnx.NodeProto, tuple[tuple[int, int], ...]]]
    shapes: list[ShapeAction]
    sources: dict[str, int]  # producer layer name -> its group id
    bn_after: dict[str, str]  # producer layer name -> scale constant of the BatchNorm right after it
    consumers: list[tuple[WeightLayer, str]]  # layers whose input channels may shrink, and the input
    rejected: list[tuple[onnx.NodeProto, str]]
    index: GraphIndex

    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def root(self, gid: int) -> Group:
        return self.groups[self.find(gid)]


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Inferred shapes (None for symbolic dims); ranks are what the walk needs most."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is best-effort: unknown shapes only block more groups
        inferred = model
    shapes: dict[str, list[int | None]] = {}
    graph = inferred.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None
                                 for d in tensor_type.shape.dim]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


class _Walker:
    """One topological pass over the graph that builds a ChannelPlan."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.index = GraphIndex(model)
        self.shapes = _shapes(model)
        layers, rejected = weight_layers(self.index)
        self.layers = {id(layer.node): layer for layer in layers}
        self.plan = ChannelPlan([], [], {}, [], [], [], {}, {}, [], list(rejected), self.index)

    # ----- groups -------------------------------------------------------------------------
    def new_group(self, size: int, *, fixed_reason: str | None = None) -> int:
        gid = len(self.plan.groups)
        group = Group(size, fixed=fixed_reason is not None)
        if fixed_reason:
            group.blocks.append(fixed_reason)
        self.plan.groups.append(group)
        self.plan.parent.append(gid)
        return gid

    def union(self, a: int, b: int) -> None:
        ra, rb = self.plan.find(a), self.plan.find(b)
        if ra == rb:
            return
        ga, gb = self.plan.groups[ra], self.plan.groups[rb]
        self.plan.parent[rb] = ra
        ga.producers += gb.producers
        ga.blocks += gb.blocks
        ga.fixed = ga.fixed or gb.fixed
        if ga.size != gb.size:
            ga.blocks.append(f"coupled tensors disagree on channel count ({ga.size} vs {gb.size})")

    def block(self, layout: Layout, reason: str) -> None:
        for gid, _ in layout.segments:
            group = self.plan.root(gid)
            if reason not in group.blocks:
                group.blocks.append(reason)

    def channels(self, layout: Layout) -> int:
        return sum(self.plan.root(g).size * f for g, f in layout.segments)

    # ----- tensors ------------------------------------------------------------------------
    def rank(self, name: str) -> int | None:
        value = self.index.const(name)
        if value is not None:
            return value.ndim
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)

    def label(self, tensor: str, layout: Layout) -> None:
        self.plan.layouts[tensor] = layout
        if tensor in self.index.graph_outputs:
            self.block(layout, f"its channels reach the graph output {tensor!r}")
        if tensor in self.index.subgraph_reads:
            self.block(layout, f"tensor {tensor!r} is read inside a control-flow subgraph")

    def layout(self, name: str) -> Layout | None:
        return self.plan.layouts.get(name)

    def block_extra_outputs(self, node: onnx.NodeProto, what: str) -> None:
        for extra in node.output[1:]:
            if (extra and self.index.consumers.get(extra)) or extra in self.index.graph_outputs:
                layout = self.layout(node.input[0])
                if layout:
                    self.block(layout, f"{what} {self.index.name(node)} uses its optional output {extra!r}")

    # ----- the walk -----------------------------------------------------------------------
    def run(self) -> ChannelPlan:
        for node in self.index.graph.node:
            layer = self.layers.get(id(node))
            labeled = [slot for slot, name in enumerate(node.input) if name in self.plan.layouts]
            if labeled:
                self.consume(node, layer, labeled)
            if layer is not None:
                self.maybe_source(layer)
        return self.plan

    def consume(self, node: onnx.NodeProto, layer: WeightLayer | None, labeled: list[int]) -> None:
        op = node.op_type
        name = self.index.name(node)
        first = self.plan.layouts[node.input[labeled[0]]]
        if node.domain not in ("", "ai.onnx"):
            self.block(first, f"its channels reach custom op {op} ({name})")
            for slot in labeled[1:]:
                self.block(self.plan.layouts[node.input[slot]], f"its channels reach custom op {op}")
            return
        if op in WEIGHT_OPS_HANDLED:
            self.weight_consumer(node, layer, labeled)
        elif op in UNARY:
            self.unary(node, labeled)
        elif op in ELEMENTWISE:
            self.elementwise(node)
        elif op in POOLING:
            if first.axis != 1 or any(f != 1 for _, f in first.segments):
                self.block(first, f"{op} {name} pools a tensor whose channel axis is not 1")
            else:
                self.block_extra_outputs(node, op)
                self.label(node.output[0], first)
        elif op == "BatchNormalization":
            self.per_channel_params(node, labeled, range(1, 5))
        elif op == "InstanceNormalization":
            self.per_channel_params(node, labeled, range(1, 3))
        elif op == "Concat":
            self.concat(node)
        elif op == "Transpose":
            self.transpose(node, first)
        elif op == "Flatten":
            self.flatten(node, first)
        elif op == "Reshape":
            self.reshape(node, labeled, first)
        elif op in REDUCE:
            self.reduce(node, labeled, first)
        elif op in ("Softmax", "LogSoftmax", "Hardmax"):
            default = -1 if _opset(self.index.model) >= 13 else 1
            axis = _norm_axis(int(attribute(node, "axis", default)), first.rank)
            if axis == first.axis:
                self.block(first, f"{op} {name} normalizes across channels")
            else:
                self.label(node.output[0], first)
        elif op == "Shape":
            self.shape_reader(node, first)
        elif op == "Pad":
            self.pad(node, labeled, first)
        else:
            why = {
                "LayerNormalization": "normalizes across channels, so removing some changes the rest",
                "GroupNormalization": "normalizes over channel groups",
                "LRN": "mixes neighbouring channels",
                "Split": "splits the channel tensor (channel dim ambiguous)",
                "Slice": "slices the tensor (channel dim ambiguous)",
                "Gather": "gathers from the tensor (channel dim ambiguous)",
                "Resize": "resizes the tensor (not followed)",
            }.get(op, "is an op the pruner cannot follow")
            for slot in labeled:
                self.block(self.plan.layouts[node.input[slot]], f"its channels reach {op} {name}, which {why}")

    def maybe_source(self, layer: WeightLayer) -> None:
        """Give a prunable layer's output channels a new group and record the slices that imply."""
        node = layer.node
        if layer.op_type == "Conv" and layer.group != 1:
            return  # grouped/depthwise convs follow their input (see weight_consumer)
        if layer.op_type == "Gemm" and int(attribute(node, "transA", 0)):
            return
        out = node.output[0]
        rank = self.rank(out)
        weight = self.index.const(layer.weight)
        if rank is None:
            self.plan.rejected.append((node, "its output shape is unknown, so the channel dim is ambiguous"))
            return
        axis = 1 if layer.op_type in ("Conv", "Gemm") else rank - 1
        gid = self.new_group(int(weight.shape[layer.out_axis]))
        group = self.plan.groups[gid]
        group.producers.append(layer)
        self.plan.sources[layer.name] = gid
        segments = ((gid, 1),)
        self.plan.slices.append(SliceAction(node, 1, layer.out_axis, segments))
        if self.index.uses(layer.weight) > 1:
            group.blocks.append(f"its weight {layer.weight!r} is shared with another node")
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if bias is not None:
            value = self.index.const(bias)
            if value is None:
                group.blocks.append("its bias is computed at run time")
            elif value.ndim >= 1 and value.shape[-1] == group.size and value.size == group.size:
                self.plan.slices.append(SliceAction(node, 2, value.ndim - 1, segments))
            elif value.size != 1:
                group.blocks.append(f"its bias has shape {list(value.shape)}, not one value per channel")
        self.label(out, Layout(axis, rank, segments))
        consumers = self.index.consumers.get(out, [])
        if len(consumers) == 1 and consumers[0][0].op_type == "BatchNormalization":
            scale = consumers[0][0].input[1]
            if self.index.const(scale) is not None:
                self.plan.bn_after[layer.name] = scale

    def weight_consumer(self, node: onnx.NodeProto, layer: WeightLayer | None, labeled: list[int]) -> None:
        name = self.index.name(node)
        layout = self.plan.layouts[node.input[labeled[0]]]
        if labeled != [0] or layer is None:
            for slot in labeled:
                self.block(self.plan.layouts[node.input[slot]],
                           f"it is multiplied with another activation in {node.op_type} {name} "
                           "(run-time weights, e.g. attention)")
            return
        flat = any(f != 1 for _, f in layout.segments)
        if layer.op_type == "Conv":
            if layout.axis != 1 or flat:
                self.block(layout, f"Conv {name} reads it with a channel axis other than 1")
                return
            if layer.group == 1:
                self.plan.slices.append(SliceAction(node, 1, 1, layout.segments))
                self.plan.consumers.append((layer, node.input[0]))
                return
            weight = self.index.const(layer.weight)
            channels = self.channels(layout)
            if layer.group == channels and weight.shape[0] == channels and weight.shape[1] == 1:
                self.plan.slices.append(SliceAction(node, 1, 0, layout.segments))
                bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
                if bias is not None:
                    if self.index.const(bias) is None:
                        self.block(layout, f"depthwise Conv {name} has a run-time bias")
                        return
                    self.plan.slices.append(SliceAction(node, 2, 0, layout.segments))
                if self.index.uses(layer.weight) > 1:
                    self.block(layout, f"depthwise Conv {name} shares its weight")
                self.plan.depthwise.append((node, layout.segments))
                self.label(node.output[0], layout)
            else:
                self.block(layout, f"grouped Conv {name} (group={layer.group}) ties channels to groups")
            return
        if layer.op_type == "Gemm" and int(attribute(node, "transA", 0)):
            self.block(layout, f"Gemm {name} transposes its input")
            return
        if layout.axis != layout.rank - 1:
            self.block(layout, f"{layer.op_type} {name} reduces over an axis that is not the channel axis")
            return
        self.plan.slices.append(SliceAction(node, 1, layer.in_axis, layout.segments))
        self.plan.consumers.append((layer, node.input[0]))

    def unary(self, node: onnx.NodeProto, labeled: list[int]) -> None:
        layout = self.plan.layouts[node.input[0]]
        if labeled != [0]:
            for slot in labeled:
                self.block(self.plan.layouts[node.input[slot]],
                           f"it is a parameter of {node.op_type} {self.index.name(node)}")
            return
        for slot, name in enumerate(node.input[1:], start=1):
            if not name:
                continue
            value = self.index.const(name)
            if node.op_type == "PRelu":
                self.elementwise(node)
                return
            if value is None or value.size != 1:
                self.block(layout, f"{node.op_type} {self.index.name(node)} has a non-scalar input {slot}")
                return
        self.block_extra_outputs(node, node.op_type)
        self.label(node.output[0], layout)

    def elementwise(self, node: onnx.NodeProto) -> None:
        name = self.index.name(node)
        ranks = [self.rank(i) for i in node.input if i]
        if any(r is None for r in ranks):
            for i in node.input:
                if i in self.plan.layouts:
                    self.block(self.plan.layouts[i], f"{node.op_type} {name} has an input of unknown rank")
            return
        out_rank = max(ranks)
        coupled = [(slot, self.plan.layouts[i]) for slot, i in enumerate(node.input) if i in self.plan.layouts]
        base = coupled[0][1]
        axis = base.axis + out_rank - base.rank
        for _, other in coupled[1:]:
            if (other.axis + out_rank - other.rank != axis or len(other.segments) != len(base.segments)
                    or any(fa != fb for (_, fa), (_, fb) in zip(other.segments, base.segments, strict=True))):
                self.block(base, f"{node.op_type} {name} combines tensors whose channels do not line up")
                self.block(other, f"{node.op_type} {name} combines tensors whose channels do not line up")
                return
        for _, other in coupled[1:]:
            for (ga, _), (gb, _) in zip(base.segments, other.segments, strict=True):
                self.union(ga, gb)
        channels = self.channels(base)
        for slot, tensor in enumerate(node.input):
            if not tensor or tensor in self.plan.layouts:
                continue
            value = self.index.const(tensor)
            shape = list(value.shape) if value is not None else self.shapes.get(tensor)
            position = axis - (out_rank - len(shape))
            if position < 0 or shape[position] == 1:
                continue
            if value is None:
                self.block(base, f"{node.op_type} {name} combines it with {tensor!r}, "
                                 "whose channels cannot be pruned")
            elif shape[position] == channels:
                self.plan.slices.append(SliceAction(node, slot, position, base.segments))
            else:
                self.block(base, f"{node.op_type} {name} has a constant whose shape does not match the channels")
        self.label(node.output[0], Layout(axis, out_rank, base.segments))

    def per_channel_params(self, node: onnx.NodeProto, labeled: list[int], slots: range) -> None:
        layout = self.plan.layouts[node.input[0]]
        name = self.index.name(node)
        if labeled != [0] or layout.axis != 1 or any(f != 1 for _, f in layout.segments):
            self.block(layout, f"{node.op_type} {name} does not normalize along its channel axis")
            return
        for slot in slots:
            if slot < len(node.input) and node.input[slot]:
                if self.index.const(node.input[slot]) is None:
                    self.block(layout, f"{node.op_type} {name} has run-time parameters")
                    return
                self.plan.slices.append(SliceAction(node, slot, 0, layout.segments))
        self.block_extra_outputs(node, node.op_type)
        self.label(node.output[0], layout)

    def concat(self, node: onnx.NodeProto) -> None:
        layouts = [self.plan.layouts.get(i) for i in node.input]
        first = next(lay for lay in layouts if lay is not None)
        axis = _norm_axis(int(attribute(node, "axis", 0)), first.rank)
        name = self.index.name(node)
        if axis != first.axis:
            self.elementwise_like_concat(node, layouts, first)
            return
        segments: list[tuple[int, int]] = []
        for tensor, layout in zip(node.input, layouts, strict=True):
            if layout is not None:
                if layout.axis != axis or layout.rank != first.rank:
                    self.block(layout, f"Concat {name} joins it along another axis")
                    self.block(first, f"Concat {name} joins tensors with different channel axes")
                    return
                segments += layout.segments
                continue
            shape = self.shapes.get(tensor) or (list(self.index.const(tensor).shape)
                                                if self.index.const(tensor) is not None else None)
            if shape is None or shape[axis] is None:
                for lay in layouts:
                    if lay is not None:
                        self.block(lay, f"Concat {name} has an input with unknown channel count")
                return
            gid = self.new_group(int(shape[axis]),
                                 fixed_reason=f"its channels come from {tensor!r}, which no prunable layer makes")
            segments.append((gid, 1))
        self.label(node.output[0], Layout(axis, first.rank, tuple(segments)))

    def elementwise_like_concat(self, node: onnx.NodeProto, layouts: list[Layout | None], first: Layout) -> None:
        """Concat along a non-channel axis: every input must carry the same channels."""
        name = self.index.name(node)
        for layout in layouts:
            if layout is None or layout.axis != first.axis or len(layout.segments) != len(first.segments):
                for lay in layouts:
                    if lay is not None:
                        self.block(lay, f"Concat {name} joins it with a tensor whose channels cannot be pruned")
                return
        for layout in layouts[1:]:
            for (ga, _), (gb, _) in zip(first.segments, layout.segments, strict=True):
                self.union(ga, gb)
        self.label(node.output[0], first)

    def transpose(self, node: onnx.NodeProto, layout: Layout) -> None:
        perm = attribute(node, "perm")
        perm = list(range(layout.rank))[::-1] if perm is None else list(perm)
        if any(f != 1 for _, f in layout.segments):
            self.block(layout, f"Transpose {self.index.name(node)} reorders flattened channels")
            return
        self.label(node.output[0], Layout(perm.index(layout.axis), layout.rank, layout.segments))

    def flatten(self, node: onnx.NodeProto, layout: Layout) -> None:
        axis = _norm_axis(int(attribute(node, "axis", 1)), layout.rank)
        shape = self.shapes.get(node.input[0])
        trailing = shape[layout.axis + 1:] if shape else None
        if axis != layout.axis or trailing is None or any(d is None for d in trailing):
            self.block(layout, f"Flatten {self.index.name(node)} merges the channel axis with others")
            return
        factor = int(np.prod(trailing)) if trailing else 1
        segments = tuple((g, f * factor) for g, f in layout.segments)
        self.label(node.output[0], Layout(1, 2, segments))

    def reshape(self, node: onnx.NodeProto, labeled: list[int], layout: Layout) -> None:
        name = self.index.name(node)
        in_shape = self.shapes.get(node.input[0])
        out_shape = self.shapes.get(node.output[0])
        channels = self.channels(layout)
        if labeled != [0] or in_shape is None or out_shape is None:
            self.block(layout, f"Reshape {name} has an unknown shape, so the channel dim is ambiguous")
            return
        trailing = in_shape[layout.axis + 1:]
        if (layout.axis == 1 and len(out_shape) == 2 and all(d is not None for d in trailing)
                and out_shape[1] == channels * int(np.prod(trailing or [1]))):
            factor = int(np.prod(trailing or [1]))
            new = Layout(1, 2, tuple((g, f * factor) for g, f in layout.segments))
            position = 1
        elif (layout.axis == len(in_shape) - 1 and out_shape and out_shape[-1] == channels
              and len(out_shape) >= 1):
            new = Layout(len(out_shape) - 1, len(out_shape), layout.segments)
            position = len(out_shape) - 1
        else:
            self.block(layout, f"Reshape {name} splits or merges the channel dim (e.g. attention heads)")
            return
        target = self.index.const(node.input[1])
        if target is None:
            self.block(layout, f"Reshape {name} takes its shape from the graph at run time")
            return
        if int(target[position]) > 0:
            self.plan.shapes.append(ShapeAction(node, 1, position, new.segments))
        self.label(node.output[0], new)

    def reduce(self, node: onnx.NodeProto, labeled: list[int], layout: Layout) -> None:
        axes = attribute(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            value = self.index.const(node.input[1])
            axes = None if value is None else value.tolist()
            if value is None:
                self.block(layout, f"{node.op_type} {self.index.name(node)} has run-time axes")
                return
        keep = int(attribute(node, "keepdims", 1))
        if labeled != [0]:
            self.block(layout, f"{node.op_type} {self.index.name(node)} reads channels as axes")
            return
        axes = list(range(layout.rank)) if not axes else [_norm_axis(int(a), layout.rank) for a in axes]
        if layout.axis in axes:
            self.block(layout, f"{node.op_type} {self.index.name(node)} reduces over channels")
            return
        axis = layout.axis if keep else layout.axis - sum(a < layout.axis for a in axes)
        rank = layout.rank if keep else layout.rank - len(axes)
        self.label(node.output[0], Layout(axis, rank, layout.segments))

    def shape_reader(self, node: onnx.NodeProto, layout: Layout) -> None:
        """Shape(x) is harmless when only non-channel dims (the batch) are read from it."""
        start = _norm_axis(int(attribute(node, "start", 0)), layout.rank)
        end = attribute(node, "end")
        end = layout.rank if end is None else _norm_axis(int(end), layout.rank + 1)
        if not start <= layout.axis < end:
            return
        for reader, slot in self.index.consumers.get(node.output[0], []):
            index = self.index.const(reader.input[1]) if reader.op_type == "Gather" and slot == 0 else None
            if index is None or index.size != 1 or int(index.reshape(-1)[0]) % (end - start) == layout.axis - start:
                self.block(layout, f"its channel count is read by Shape {self.index.name(node)}")
                return
        if node.output[0] in self.index.graph_outputs:
            self.block(layout, f"its shape is a graph output via {self.index.name(node)}")

    def pad(self, node: onnx.NodeProto, labeled: list[int], layout: Layout) -> None:
        pads = attribute(node, "pads")
        if pads is None and len(node.input) > 1:
            value = self.index.const(node.input[1])
            pads = None if value is None else value.tolist()
        if (labeled != [0] or pads is None or (len(node.input) > 3 and node.input[3])
                or pads[layout.axis] or pads[layout.axis + layout.rank]):
            self.block(layout, f"Pad {self.index.name(node)} may pad the channel axis")
            return
        self.label(node.output[0], layout)


WEIGHT_OPS_HANDLED = {"Conv", "Gemm", "MatMul"}


def _norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def analyse(model: onnx.ModelProto) -> ChannelPlan:
    """Group the model's prunable channels and list the edits; the model is not changed."""
    return _Walker(model).run()
