/**
 * Model export: a task's network (the engine's MLP with task parameters, see taskParams) as a file
 * another runtime loads. One table of formats, so the HTTP layer, its schema and the tests iterate
 * the same list.
 */
import type { ModelSpec, ParamArrays } from '../meta/model.js';
import { ONNX_CONTENT_TYPE, toOnnx } from './onnx.js';
import { toTfjs, type TfjsArtefact } from './tfjs.js';

export { ONNX_OPSET } from './onnx.js';
export type { TfjsArtefact, TfjsWeightSpec } from './tfjs.js';

export const EXPORT_FORMATS = ['onnx', 'tfjs'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** An exported model: the bytes or JSON document to send, its media type and a file name extension. */
export type ExportedModel =
  | { format: 'onnx'; contentType: string; extension: '.onnx'; body: Uint8Array }
  | { format: 'tfjs'; contentType: 'application/json'; extension: '.tfjs.json'; body: TfjsArtefact };

/**
 * The network `spec` with task parameters `params` in `format`; `name` names the graph or model.
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function exportModel(format: ExportFormat, spec: ModelSpec, params: ParamArrays, name?: string): ExportedModel {
  return format === 'onnx'
    ? { format, contentType: ONNX_CONTENT_TYPE, extension: '.onnx', body: toOnnx(spec, params, name) }
    : { format, contentType: 'application/json', extension: '.tfjs.json', body: toTfjs(spec, params, name) };
}
