/**
 * The evaluate processor: runs one evaluation row. It claims the row, loads the meta-model (through
 * the process's hot cache), rebuilds the families it draws held-out tasks from (the one the request
 * named, else the meta-model's own, mixed with equal weights as in meta-training), looks up the newest
 * `multitask` meta-model of the same tenant and families as a baseline (unless the evaluated model is
 * one or the request's `baselines` leave it out), and writes the engine's rows.
 *
 * The engine runs one number of shots at a time and the processor yields to the event loop between
 * them, so BullMQ keeps renewing the job's lock through a long evaluation. Splitting by shots changes
 * nothing: each number of shots draws its tasks from its own seed (evaluateMetaModel).
 *
 * How it ends: `succeeded` with its rows; `failed` with a readable reason when its inputs cannot be
 * evaluated (the meta-model or a family is gone or does not fit, the engine meets a non-finite value),
 * no retry; anything else (Postgres unreachable) is thrown, so BullMQ retries, and the last attempt
 * records `failed`.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import type { MetaModelCache } from '../db/meta-model-cache.js';
import * as evaluations from '../db/repositories/evaluations.js';
import { loadMetaModel } from '../db/repositories/meta-models.js';
import { loadFamilySpecs } from '../db/repositories/task-families.js';
import { CodecError, createFamily, evaluateMetaModel, evaluationBaselines, FamilyMixError, FamilySpecError, mix, NonFiniteError, type EvaluationRow, type MetaModel, type TaskFamily } from '../meta/index.js';
import { EpisodeShapeError } from '../meta/families/index.js';
import { errorMessage } from '../util/error-reason.js';
import type { JobHandler } from './worker.js';

export interface EvaluateDeps {
  db: Db;
  logger: Logger;
  /** This process's decoded meta-models (shared with the adapt processor). */
  metaModels: MetaModelCache;
}

export type EvaluateOutcome = { outcome: 'succeeded'; rows: number } | { outcome: 'failed'; error: string } | { outcome: 'skipped' };

/** The evaluation cannot succeed: it ends `failed` with this message and is not retried. */
class EvaluationFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvaluationFailure';
  }
}

/** Errors of the inputs, not of the infrastructure: retrying would fail the same way. */
const INPUT_ERRORS = [CodecError, NonFiniteError, RangeError, EpisodeShapeError, FamilySpecError, FamilyMixError];

/** The BullMQ handler for the `evaluate` queue. */
export function createEvaluateHandler(deps: EvaluateDeps): JobHandler<'evaluate'> {
  return async (job) => {
    const outcome = await runEvaluation(deps, job.data.evaluationId, { lastAttempt: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) });
    if (outcome.outcome === 'failed') throw new UnrecoverableError(outcome.error);
    return outcome;
  };
}

/**
 * The family an evaluation draws its held-out tasks from: the one family named, or several mixed with
 * equal weights (as meta-training mixes them). Null when there is none, or one is missing or not ready. The API builds
 * it the same way to check a request before storing it.
 * @throws FamilyMixError when the families do not agree on kind, inputDim or ways.
 */
export async function evaluationFamily(db: Db, tenantId: string, familyIds: readonly string[]): Promise<TaskFamily | null> {
  const specs = await loadFamilySpecs(db, tenantId, familyIds);
  if (familyIds.length === 0 || familyIds.some((id) => !specs.has(id))) return null;
  const families = familyIds.map((id) => createFamily(specs.get(id)!));
  return families.length === 1 ? families[0] : mix(families.map((family) => ({ family, weight: 1 })));
}

async function modelOf(deps: EvaluateDeps, id: string): Promise<MetaModel> {
  const model = await deps.metaModels.get(id, (key) => loadMetaModel(deps.db, key));
  if (!model) throw new EvaluationFailure(`meta-model ${id} is gone`);
  return model;
}

/** Runs evaluation `evaluationId` to its end (see the module comment). */
export async function runEvaluation(deps: EvaluateDeps, evaluationId: string, options: { lastAttempt?: boolean } = {}): Promise<EvaluateOutcome> {
  const { db, logger } = deps;
  const claimed = await evaluations.claimEvaluation(db, evaluationId);
  if (!claimed) return { outcome: 'skipped' };
  try {
    const model = await modelOf(deps, claimed.metaModelId);
    const family = await evaluationFamily(db, claimed.tenantId, claimed.familyIds);
    if (!family) throw new EvaluationFailure(`a task family of ${claimed.familyIds.join(', ')} is gone or not ready`);
    // The baseline was meta-trained on the same families as the model (whatever family is evaluated);
    // a multitask model is not its own baseline, and none is looked for when the request left it out.
    const wantsMultitask = claimed.algorithm !== 'multitask' && evaluationBaselines(claimed.settings).includes('multitask');
    const multitaskId = wantsMultitask ? await evaluations.findMultitaskBaseline(db, claimed.tenantId, claimed.modelFamilyIds) : null;
    const multitask = multitaskId === null ? undefined : await modelOf(deps, multitaskId);
    const { familyId: _familyId, ...settings } = claimed.settings;
    const rows: EvaluationRow[] = [];
    for (const shots of settings.shots) {
      rows.push(...evaluateMetaModel(model, family, { ...settings, shots: [shots] }, { multitask }));
      await nextTurn();
    }
    await evaluations.finishEvaluation(db, evaluationId, rows, multitaskId);
    logger.info({ evaluationId, rows: rows.length, multitaskId }, 'evaluation succeeded');
    return { outcome: 'succeeded', rows: rows.length };
  } catch (error) {
    const known = error instanceof EvaluationFailure || INPUT_ERRORS.some((type) => error instanceof type);
    if (!known && !options.lastAttempt) throw error;
    const reason = errorMessage(error);
    await evaluations.failEvaluation(db, evaluationId, reason);
    logger.warn({ evaluationId, err: error }, 'evaluation failed');
    return { outcome: 'failed', error: reason };
  }
}

