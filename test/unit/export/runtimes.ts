/**
 * Runs exported models in the runtimes a client would use: onnxruntime-node for ONNX files and
 * @tensorflow/tfjs (`tf.loadLayersModel` over `tf.io.fromMemory`) for TF.js artefacts, answering in
 * /predict's shape so tests compare the two directly.
 */
import { expect } from 'vitest';
import * as ort from 'onnxruntime-node';
import type { TfjsArtefact } from '../../../src/export/index.js';
import { tf } from '../../../src/meta/backend.js';
import type { Prediction } from '../../../src/meta/index.js';

/** Inputs as rows of numbers, flattened row-major to float32. */
function flat(x: readonly number[][]): Float32Array {
  return Float32Array.from(x.flat());
}

/** The ONNX model in onnxruntime on `x`; `kind` says which outputs it must have. */
export async function runOnnx(bytes: Uint8Array, x: readonly number[][], kind: Prediction['kind']): Promise<Prediction> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const inputDim = x[0].length;
    const outputs = await session.run({ x: new ort.Tensor('float32', flat(x), [x.length, inputDim]) });
    if (kind === 'regression') {
      expect(outputs.value.dims).toEqual([x.length]);
      return { kind, values: Array.from(outputs.value.data as Float32Array) };
    }
    const [n, ways] = outputs.probabilities.dims;
    expect(n).toBe(x.length);
    expect(outputs.label.type).toBe('int64');
    const p = outputs.probabilities.data as Float32Array;
    return {
      kind,
      labels: Array.from(outputs.label.data as BigInt64Array, Number),
      probabilities: Array.from({ length: n }, (_, i) => Array.from(p.subarray(i * ways, (i + 1) * ways))),
    };
  } finally {
    await session.release();
  }
}

/** The artefact as a client receives it (a JSON document) loaded with tf.loadLayersModel, on `x`. */
export async function runTfjs(document: string, x: readonly number[][], kind: Prediction['kind']): Promise<Prediction> {
  const artefact = JSON.parse(document) as TfjsArtefact;
  const weightData = new Uint8Array(Buffer.from(artefact.weightData, 'base64')).buffer;
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: artefact.modelTopology, weightSpecs: artefact.weightSpecs, weightData }));
  try {
    const out = tf.tidy(() => (model.predict(tf.tensor2d(flat(x), [x.length, x[0].length])) as tf.Tensor).arraySync() as number[][]);
    if (kind === 'regression') return { kind, values: out.map((row) => row[0]) };
    return { kind, labels: out.map((p) => p.indexOf(Math.max(...p))), probabilities: out };
  } finally {
    model.dispose();
  }
}

/**
 * Asserts an exported model's answer matches /predict's: values and probabilities to `tolerance`
 * (relative beyond 1; default 1e-5), labels exactly.
 */
export function expectSamePrediction(actual: Prediction, expected: Prediction, what: string, tolerance = 1e-5): void {
  const close = (a: number, b: number) => expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(b)));
  expect(actual.kind).toBe(expected.kind);
  if (actual.kind === 'regression' && expected.kind === 'regression') {
    expect(actual.values).toHaveLength(expected.values.length);
    actual.values.forEach((v, i) => close(v, expected.values[i]));
  } else if (actual.kind === 'classification' && expected.kind === 'classification') {
    expect(actual.labels, what).toEqual(expected.labels);
    actual.probabilities.forEach((p, i) => p.forEach((v, j) => close(v, expected.probabilities[i][j])));
  }
}
