/**
 * Rows for adaptation tests, written through the worker-side repositories and Prisma (how the API
 * writes tasks and adaptations is tested on its side): a meta-model version stored the way a
 * finished meta-training job stores it, a task bound to it, adaptation rows carrying support sets.
 */
import type { GuardPolicy } from '../../../src/meta/index.js';
import { startAttempt, finishSucceeded } from '../../../src/db/repositories/training.js';
import type { Db } from '../../../src/db/client.js';
import { initMetaParams, modelSpec, Rng, type AlgorithmName, type ParamArrays } from '../../../src/meta/index.js';
import { float32Bytes, seedJob, type FamilyRow } from './training-fixtures.js';

export interface StoredModelOptions {
  tenantId: string;
  algorithm?: AlgorithmName;
  /** Default: a sinusoid regression family (1 input); pass a classification family for ProtoNets. */
  family?: FamilyRow;
  hidden?: number[];
  innerSteps?: number;
  innerLr?: number;
  /** Meta-parameters to store; default: the algorithm's initialisation (seed 1). */
  params?: ParamArrays;
  name?: string;
}

/** A 2-way classification family with 2 inputs (Gaussian blobs). */
export const BLOBS: FamilyRow = { name: 'blobs', kind: 'classification', inputDim: 2, nWay: 2, generator: { type: 'gaussian-blobs' } };

/** Stores a meta-model version as a succeeded job would; returns its id. */
export async function storeMetaModel(db: Db, options: StoredModelOptions): Promise<string> {
  const algorithm = options.algorithm ?? 'maml';
  const family = options.family ?? { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } };
  const hidden = options.hidden ?? [40, 40];
  const inner = { steps: options.innerSteps ?? 5, lr: options.innerLr ?? 0.01 };
  const { jobId } = await seedJob(db, {
    tenantId: options.tenantId,
    name: options.name ?? `${family.name}-${algorithm}`,
    algorithm,
    families: [family],
    model: { hidden, activation: 'relu' },
    hyper: { innerSteps: inner.steps, innerLr: inner.lr, ...(family.nWay ? { ways: family.nWay } : {}) },
  });
  const started = await startAttempt(db, jobId);
  if (!started) throw new Error('the seeded job could not start');
  const spec = modelSpec(family.kind, family.inputDim, { hidden, activation: 'relu' }, family.nWay);
  const params = options.params ?? initMetaParams({ algorithm, spec, inner, metaLr: 0.001 }, new Rng(1));
  const stored = await finishSucceeded(db, started.fence, { model: { algorithm, spec, params, inner }, metrics: { iteration: 40, trainLoss: 1, valLoss: 1 } });
  return stored.id;
}

/** A task of `tenantId` bound to meta-model `metaModelId` (shape copied from it). */
export async function createTask(db: Db, tenantId: string, metaModelId: string): Promise<string> {
  const model = await db.prisma.metaModel.findUniqueOrThrow({ where: { id: metaModelId } });
  const task = await db.prisma.task.create({ data: { tenantId, metaModelId, kind: model.kind, inputDim: model.inputDim, nWay: model.nWay } });
  return task.id;
}

export interface SupportSet {
  /** Rows of inputDim numbers. */
  x: number[][];
  y: number[];
}

/** An adaptation row waiting for the worker, as the API writes it. */
export async function createAdaptation(db: Db, tenantId: string, taskId: string, support: SupportSet, options: { steps?: number; innerLr?: number; guard?: GuardPolicy } = {}) {
  const row = await db.prisma.adaptation.create({
    data: {
      tenantId,
      taskId,
      steps: options.steps ?? 5,
      innerLr: options.innerLr ?? 0.01,
      guard: options.guard,
      supportSize: support.y.length,
      supportX: float32Bytes(support.x.flat()),
      supportY: float32Bytes(support.y),
    },
  });
  return row.id;
}

/** K points of y = amplitude * sin(x - phase) on [-5, 5], the MAML paper's sinusoid task. */
export function sinusoidSupport(k: number, amplitude: number, phase: number, rng = new Rng(k * 7919 + Math.round(amplitude * 100))): SupportSet {
  const x = Array.from({ length: k }, () => [rng.uniform(-5, 5)]);
  return { x, y: x.map(([v]) => amplitude * Math.sin(v - phase)) };
}

/** Two separated classes in 2-D, `shots` each. */
export function blobSupport(shots: number): SupportSet {
  const x: number[][] = [];
  const y: number[] = [];
  for (let c = 0; c < 2; c++) {
    for (let i = 0; i < shots; i++) {
      x.push([c * 4 - 2 + 0.1 * i, (c === 0 ? 1 : -1) + 0.05 * i]);
      y.push(c);
    }
  }
  return { x, y };
}
