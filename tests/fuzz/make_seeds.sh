#!/usr/bin/env bash
# Writes the generated part of the fuzz seed corpora (binary inputs and
# oversized ones) into OUT/<target>/. Run by the build.
#   make_seeds.sh OUT SOURCE_DIR PROTOC
set -euo pipefail
out=$1 source=$2 protoc=$3
rm -rf "$out"
mkdir -p "$out"/{kserve_json,kserve_binary,multipart,http,http2,grpc_infer,model_config,workflow,image,audio,tokenizer,npy,cache_value,onnx_model}
for config in "$source"/models/*/config.yaml; do cp "$config" "$out/model_config/$(basename "$(dirname "$config")").yaml"; done
cp "$source"/workflows/*.yaml "$out/workflow/"

python3 - "$out" <<'PY'
import json, struct, sys
out = sys.argv[1]
def write(path, data):
    open(f"{out}/{path}", "wb").write(data if isinstance(data, bytes) else data.encode())

# JSON nesting far past any sane depth, and thousands of inputs.
write("kserve_json/deep_nesting.json", '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":' + "[" * 100000 + "]" * 100000 + "}]}")
write("kserve_json/many_inputs.json", json.dumps({"inputs": [{"name": f"i{k}", "shape": [1], "datatype": "FP32", "data": [k]} for k in range(3000)]}))

# Binary extension: 4-byte header length, then the body.
def binary(name, header, payload, header_length=None):
    h = json.dumps(header).encode()
    write(f"kserve_binary/{name}", struct.pack("<I", len(h) if header_length is None else header_length) + h + payload)
identity = {"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 64}}],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}
binary("identity.bin", identity, struct.pack("<16f", *range(16)))
binary("header_longer_than_body.bin", identity, b"", header_length=1 << 30)
binary("header_length_zero.bin", identity, struct.pack("<16f", *range(16)), header_length=0)
lying = {"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 1 << 40}}]}
binary("lying_binary_data_size.bin", lying, b"\0" * 64)
overflow = {"inputs": [{"name": "input", "shape": [2305843009213693952, 8], "datatype": "FP32", "parameters": {"binary_data_size": 0}}]}
binary("shape_times_dtype_overflow.bin", overflow, b"")
two = {"inputs": [{"name": "a", "shape": [4], "datatype": "INT64", "parameters": {"binary_data_size": 32}},
                  {"name": "b", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}]}
binary("bytes_lengths_lie.bin", two, struct.pack("<4q", 1, 2, 3, 4) + struct.pack("<I", 1000) + b"abcde")

# .npy files.
def npy(name, header, payload, magic=b"\x93NUMPY\x01\x00"):
    h = header.encode()
    h += b" " * ((16 - (len(magic) + 2 + len(h) + 1) % 16) % 16) + b"\n"
    write(f"npy/{name}", magic + struct.pack("<H", len(h)) + h + payload)
npy("float32.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", struct.pack("<6f", *range(6)))
npy("shape_overflow.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }", b"")
npy("big_endian_fortran.npy", "{'descr': '>i8', 'fortran_order': True, 'shape': (2,), }", struct.pack(">2q", 1, 2))
npy("truncated_header.npy", "{'descr': '<f4', 'sha", b"")
npy("version_three.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, magic=b"\x93NUMPY\x03\x00")

# Cache values (value_codec.h): "BRV" version expiry count, then tensors.
def tensor(dtype, shape, payload):
    return struct.pack("<BB", dtype, len(shape)) + b"".join(struct.pack("<q", d) for d in shape) + struct.pack("<Q", len(payload)) + payload
def value(name, tensors, version=1, count=None):
    write(f"cache_value/{name}", b"BRV" + bytes([version]) + struct.pack("<qI", 1 << 40, len(tensors) if count is None else count) + b"".join(tensors))
value("embedding.bin", [tensor(5, [1, 4], struct.pack("<4f", 1, 2, 3, 4)), tensor(6, [1], struct.pack("<I", 3) + b"abc")])
value("version_two.bin", [tensor(5, [1], struct.pack("<f", 1))], version=2)
value("count_lies.bin", [tensor(5, [1], struct.pack("<f", 1))], count=1000)
value("size_lies.bin", [struct.pack("<BB", 5, 1) + struct.pack("<q", 4) + struct.pack("<Q", 1 << 62)])
value("bytes_malformed.bin", [tensor(6, [2], struct.pack("<I", 99) + b"x")])

# ONNX models (protobuf written field by field): a MatMul whose weight's dims
# lie about its data, one whose dims overflow, a negative dim, a graph output
# no node makes, and a truncated file.
def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out
def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    value = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(value)) + value
def value_info(name, dims):
    shape = b"".join(field(1, field(1, d)) for d in dims)
    return field(1, name) + field(2, field(1, field(1, 1) + field(2, shape)))
def onnx_model(name, weight_dims, weight_bytes, outputs=("y",)):
    weight = b"".join(field(1, d) for d in weight_dims) + field(2, 1) + field(8, "w") + field(9, weight_bytes)
    node = field(1, "x") + field(1, "w") + field(2, "y") + field(4, "MatMul")
    graph = (field(1, node) + field(2, "g") + field(5, weight) + field(11, value_info("x", [1, 4]))
             + b"".join(field(12, value_info(o, [1, 2])) for o in outputs))
    model = field(1, 8) + field(7, graph) + field(8, field(2, 17))
    write(f"onnx_model/{name}", model)
    return model
whole = onnx_model("matmul.onnx", [4, 2], struct.pack("<8f", *range(8)))
onnx_model("dims_lie.onnx", [4, 2], struct.pack("<3f", 1, 2, 3))
onnx_model("dims_overflow.onnx", [1 << 40, 1 << 40], b"")
onnx_model("negative_dim.onnx", [-4, 2], struct.pack("<8f", *range(8)))
onnx_model("unmade_output.onnx", [4, 2], struct.pack("<8f", *range(8)), outputs=("y", "z"))
write("onnx_model/truncated.onnx", whole[: len(whole) // 2])

# HTTP: a header flood and a giant request line.
write("http/header_flood.txt", "GET / HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-H{k}: {'v' * 50}\r\n" for k in range(500)) + "\r\n")
write("http/giant_request_line.txt", "GET /" + "a" * 70000 + " HTTP/1.1\r\nHost: x\r\n\r\n")
write("http/slow_body.txt", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + "x" * 100)

# HTTP/2 (after the preface the harness sends): an HPACK bomb (one large
# field indexed, then referenced again and again), a rapid reset flood, an
# endless CONTINUATION, and a request on a stream whose window is shut.
def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload
def h2_literal(name, value):
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
h2_get = b"\x82\x84\x86\x41\x09localhost"
big = b"\x40\x01x\x7f\x81\x1f" + b"v" * 4000  # literal with indexing, a 4000-byte value
write("http2/hpack_bomb", h2_frame(1, 5, 1, h2_get + big + b"\xbe" * 3000))
write("http2/rapid_reset", b"".join(h2_frame(1, 5, 2 * k + 1, h2_get) + h2_frame(3, 0, 2 * k + 1, struct.pack(">I", 8)) for k in range(2000)))
write("http2/continuation_flood", h2_frame(1, 0, 1, h2_get) + b"".join(h2_frame(9, 0, 1, h2_literal(b"x-a", b"b" * 50)) for _ in range(2000)))
write("http2/zero_window", h2_frame(4, 0, 0, struct.pack(">HI", 4, 0)) + h2_frame(1, 5, 1, h2_get))

# Tokenizer: invalid UTF-8 and long runs.
write("tokenizer/invalid_utf8.txt", b"\xff\xfe\xc3\x28\xe2\x82\xf0\x28\x8c\xbc abc \xed\xa0\x80")
write("tokenizer/long_run.txt", "a" * 100000)
PY

# gRPC ModelInferRequest messages, from text format.
encode() {
  "$protoc" --proto_path="$source/proto" --encode=inference.ModelInferRequest grpc_service.proto \
    >"$out/grpc_infer/$1"
}
encode raw_identity.bin <<'PB'
model_name: "identity"
inputs { name: "input" datatype: "FP32" shape: 1 shape: 4 }
raw_input_contents: "\000\000\200?\000\000\000@\000\000@@\000\000\200@"
PB
encode raw_count_mismatch.bin <<'PB'
model_name: "identity"
inputs { name: "a" datatype: "FP32" shape: 1 }
inputs { name: "b" datatype: "FP32" shape: 1 }
raw_input_contents: "\000\000\200?"
PB
encode typed_contents.bin <<'PB'
model_name: "clip-text"
inputs { name: "input_ids" datatype: "INT64" shape: 1 shape: 3 contents { int64_contents: 49406 int64_contents: 320 int64_contents: 49407 } }
inputs { name: "flag" datatype: "BOOL" shape: 2 contents { bool_contents: true } }
parameters { key: "priority" value { int64_param: 1 } }
PB
encode bytes_malformed.bin <<'PB'
model_name: "asr"
inputs { name: "audio" datatype: "BYTES" shape: 1 }
raw_input_contents: "\377\377\377\177RIFF"
PB
encode shape_overflow.bin <<'PB'
model_name: "identity"
inputs { name: "input" datatype: "FP16" shape: 4611686018427387904 shape: 4611686018427387904 }
raw_input_contents: ""
PB
