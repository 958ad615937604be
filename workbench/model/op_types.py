"""Op types the workbench treats as a group, named once: the layers INT8 kernels speed up, and the Q/DQ pair."""

#: Convolutions and matrix products: what ``ops="compute"`` quantizes and what a search counts as a layer's cost.
COMPUTE_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
#: What every INT8 quantizer's notes say of ``ops="compute"``.
COMPUTE_NOTE = "convolutions and matrix products only"
#: The quantize/dequantize pair a Q/DQ file marks its INT8 tensors with.
QDQ_OP_TYPES = ("QuantizeLinear", "DequantizeLinear")
