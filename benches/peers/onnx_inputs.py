"""The SFace file as shipped lists its weights as graph inputs, 29 of them without an initializer
and unused; onnxruntime wants a feed for those and OpenVINO refuses them. `loadable` drops every
graph input that is an initializer or unused (the weights and operators are untouched) and can make
the batch axis symbolic. Shared by ort_bench.py and cpu_peers.py."""

import onnx


def loadable(path, symbolic_batch=False):
    m = onnx.load(path)
    g = m.graph
    inits = {i.name for i in g.initializer}
    used = {name for n in g.node for name in n.input}
    keep = [i for i in g.input if i.name not in inits and i.name in used]
    del g.input[:]
    g.input.extend(keep)
    if symbolic_batch:
        for v in list(g.input) + list(g.output):
            v.type.tensor_type.shape.dim[0].dim_param = "N"
    return m.SerializeToString()
