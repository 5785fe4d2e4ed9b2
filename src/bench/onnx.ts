/**
 * Hand-encoded ONNX model with one MatMul node, for timing onnxruntime-node against our matmul without any extra
 * dependency: Y[M,N] = X[M,K] · W[K,N], W a constant initializer (as weights are, so ORT may prepack it); several
 * weights make a chain, one node each, like a model's layers in decode.
 */

import { Proto } from './protobuf.js';

const FLOAT = 1;

function tensorType(dims: number[]): Proto {
  const shape = new Proto();
  for (const d of dims) shape.message(1, new Proto().int(1, d)); // TensorShapeProto.dim { dim_value }
  const tensor = new Proto().int(1, FLOAT).message(2, shape); // TypeProto.Tensor { elem_type, shape }
  return new Proto().message(1, tensor); // TypeProto { tensor_type }
}

function valueInfo(name: string, dims: number[]): Proto {
  return new Proto().string(1, name).message(2, tensorType(dims));
}

/**
 * Model bytes for Y = X · W₁ · W₂ ⋯ (one MatMul node per weight, chained; more than one needs k = n), X [m, k] an
 * input named 'x', each W [k, n] a row-major constant, Y [m, n] named 'y'.
 */
export function matmulModel(m: number, k: number, n: number, ws: Float32Array[]): Uint8Array {
  if (ws.length > 1 && k !== n) throw new Error('chained MatMul needs k = n');
  const graph = new Proto();
  ws.forEach((w, i) => {
    const input = i === 0 ? 'x' : `h${i}`;
    const output = i === ws.length - 1 ? 'y' : `h${i + 1}`;
    graph.message(1, new Proto().string(1, input).string(1, `w${i}`).string(2, output).string(3, `matmul${i}`).string(4, 'MatMul'));
  });
  graph.string(2, 'matmul');
  ws.forEach((w, i) => {
    const init = new Proto().int(1, k).int(1, n).int(2, FLOAT).string(8, `w${i}`);
    graph.message(5, init.bytes(9, new Uint8Array(w.buffer, w.byteOffset, k * n * 4)));
  });
  graph.message(11, valueInfo('x', [m, k])).message(12, valueInfo('y', [m, n]));
  return new Proto()
    .int(1, 8) // ir_version
    .string(2, 'attend-bench')
    .message(7, graph)
    .message(8, new Proto().string(1, '').int(2, 17)) // opset_import { domain "", version 17 }
    .finish();
}
