/**
 * Model export: a task's network (the engine's MLP with task parameters, see taskParams) as a file
 * another runtime loads. One table of formats, so the HTTP layer, its schema and the tests iterate
 * the same list; one rule (metaModelExportRefusal) for the meta-models that have no file to give.
 */
import type { MetaModel } from '../meta/adapt.js';
import type { Calibration } from '../meta/calibration.js';
import { getAlgorithm } from '../meta/algorithms/index.js';
import { HEAD_NAMES, type ModelSpec, type ParamArrays } from '../meta/model.js';
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

/** What a task's file carries besides its network. */
export interface ExportExtras {
  /**
   * The meta-model's calibration: a classifier's probabilities are then the calibrated ones (its head
   * divided by the temperature: softmax(logits / T), the same labels) and the calibration travels in
   * the file's metadata (ONNX `metadata_props` key `fastadapt.calibration`, TF.js
   * `userDefinedMetadata.calibration`) for a runtime that computes intervals or sets itself.
   */
  calibration?: Calibration;
  /** The task's class names in index order, as a JSON array under `labels` (ONNX metadata_props, TF.js userDefinedMetadata), so the file's `label` output can be named. */
  labels?: readonly string[];
}

/**
 * The network `spec` with task parameters `params` in `format`; `name` names the graph or model;
 * `extras` what else the file carries.
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function exportModel(format: ExportFormat, spec: ModelSpec, params: ParamArrays, name?: string, extras: ExportExtras = {}): ExportedModel {
  const { calibration, labels } = extras;
  const tempered = calibration ? temperedHead(spec, params, calibration.temperature) : params;
  const named: { labels?: string } = labels && labels.length > 0 ? { labels: JSON.stringify(labels) } : {};
  const onnxMetadata: Record<string, string> = { ...named, ...(calibration ? { [CALIBRATION_METADATA_KEY]: JSON.stringify(calibration) } : {}) };
  return format === 'onnx'
    ? { format, contentType: ONNX_CONTENT_TYPE, extension: '.onnx', body: toOnnx(spec, tempered, name, onnxMetadata) }
    : { format, contentType: 'application/json', extension: '.tfjs.json', body: toTfjs(spec, tempered, name, { ...named, ...(calibration ? { calibration } : {}) }) };
}

/** The ONNX metadata key the calibration is stored under (JSON). */
export const CALIBRATION_METADATA_KEY = 'fastadapt.calibration';

/** A classifier's parameters with its head's weight and bias divided by `temperature` (others shared). */
export function temperedHead(spec: ModelSpec, params: ParamArrays, temperature: number): ParamArrays {
  if (spec.kind !== 'classification' || temperature === 1) return params;
  const scale = (name: string) => ({ shape: params[name].shape, data: params[name].data.map((v) => v / temperature) });
  return { ...params, ...Object.fromEntries(HEAD_NAMES.filter((name) => Object.hasOwn(params, name)).map((name) => [name, scale(name)])) };
}

/**
 * Why a meta-model exports no file: 'no-head' (ProtoNets and multitask learn none: each task's head
 * is built from its support set) or 'zero-head' (hyper.zeroHead stores a head of zeros, which answers
 * uniform probabilities and label 0, or 0 for regression, whatever the input).
 */
export const EXPORT_REFUSAL_REASONS = ['no-head', 'zero-head'] as const;
export interface ExportRefusal {
  reason: (typeof EXPORT_REFUSAL_REASONS)[number];
  title: string;
  detail: string;
}

/**
 * Null when meta-model `model` exports as stored (its body and meta-trained head: what a task adapted
 * with zero steps predicts); otherwise why not. Either way a task adapted from it exports its own head.
 * `ref` names the meta-model in the detail.
 */
export function metaModelExportRefusal(model: MetaModel, ref: string): ExportRefusal | null {
  const adaptTask = 'Adapt a task from it and GET /tasks/{id}/model';
  if (!getAlgorithm(model.algorithm).metaTrainsHead) {
    return {
      reason: 'no-head',
      title: 'Meta-model has no head',
      detail: `Meta-model ${ref} (${model.algorithm}) has no head of its own: each task's head is built from its support set. ${adaptTask}`,
    };
  }
  // The check is on the stored values, not on the job's settings: it is these zeros the file would carry.
  if (HEAD_NAMES.every((name) => model.params[name].data.every((v) => v === 0))) {
    const answer = model.spec.kind === 'classification' ? 'uniform probabilities and label 0' : '0';
    return {
      reason: 'zero-head',
      title: 'Meta-model head is zero',
      detail: `Meta-model ${ref} (${model.algorithm}, hyper.zeroHead) stores a head of zeros: every task's head starts there and is learned by adaptation, so the file would answer ${answer} for every input. ${adaptTask}`,
    };
  }
  return null;
}
