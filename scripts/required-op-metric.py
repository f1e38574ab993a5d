#!/usr/bin/env python3
# Issue 2 metric: the share of ONNX node tests whose op types are all in the required op list
# that pass. Usage: optc conformance .cache/onnx-node --json > r.json; scripts/required-op-metric.py r.json
# Issue 3 metric (a device backend against the reference): of the required-op tests the reference
# passes, the share that also pass on the backend:
#   optc conformance .cache/onnx-node --backend wgpu --json > w.json
#   scripts/required-op-metric.py w.json r.json
import json,sys,collections
d=json.load(open(sys.argv[1]))
req=set("""Abs Neg Exp Log Sqrt Reciprocal Pow Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh Tanh Sigmoid Erf Floor Ceil Round Sign Add Sub Mul Div Mod Max Min Sum Mean Clip Where Not And Or Xor Equal Less LessOrEqual Greater GreaterOrEqual IsNaN IsInf BitShift Cast CastLike Identity Relu LeakyRelu PRelu Elu Selu Celu Gelu HardSigmoid HardSwish Softplus Softsign Mish ThresholdedRelu Softmax LogSoftmax Hardmax ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSum ReduceLogSumExp ArgMax ArgMin CumSum TopK Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool LpNormalization BatchNormalization InstanceNormalization LayerNormalization GroupNormalization RMSNormalization LRN Gemm MatMul Einsum Dropout Resize DepthToSpace SpaceToDepth Pad Trilu Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Gather GatherElements GatherND ScatterElements ScatterND Expand Tile Shape Size Constant ConstantOfShape Range OneHot NonZero EyeLike QuantizeLinear DequantizeLinear DynamicQuantizeLinear QLinearConv QLinearMatMul MatMulInteger ConvInteger If""".split())
ref_pass=None
if len(sys.argv)>2:
    ref_pass={t['name'] for t in json.load(open(sys.argv[2]))['tests'] if t['status']=='passed'}
c=collections.Counter(); bad=[]
for t in d['tests']:
    if set(t['op_types'])<=req and (ref_pass is None or t['name'] in ref_pass):
        c[t['status']]+=1
        if t['status']!='passed': bad.append((t['status'],t['name'],t['op_types'],t.get('reason','')[:150]))
print(c, c['passed']/sum(c.values()))
for b in bad: print(*b)
