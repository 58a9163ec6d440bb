/**
 * The studies' scheduler: successive halving over trial jobs, run by every worker process. Each
 * pass takes the running studies from Postgres and moves each on as far as its trials allow
 * (db/repositories/studies.ts advanceStudy: under the study row's lock, from the stored state only),
 * then enqueues what the step created. Nothing lives in this process between passes, so a worker
 * killed mid-study, a second worker or a wiped Redis changes nothing: any scheduler's next pass
 * continues the study, and a trial job or evaluation whose enqueue was lost is enqueued by the
 * reconciler like any other.
 *
 * Why a periodic pass rather than a queue of rung decisions: a study advances when its trials end,
 * which the meta-train processor knows nothing about; a pass every STUDY_INTERVAL_MS (a second or
 * two, one indexed query when no study runs) is simpler than making every trial's end enqueue a
 * decision, and as durable.
 */
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import { advanceStudy, listRunningStudyIds, type StudyStep } from '../db/repositories/studies.js';
import { PeriodicPass } from './periodic.js';
import { enqueueEvaluation, enqueueMetaTrain, type Queues } from './queues.js';

export interface StudySchedulerOptions {
  db: Db;
  queues: Queues;
  logger: Logger;
  /** Queued or running jobs one tenant may have, trials included (config.limits.maxConcurrentJobsPerTenant). */
  maxActiveJobsPerTenant: number;
  /** Pause between passes (config.studyIntervalMs). Default 2000. */
  intervalMs?: number;
}

export class StudyScheduler {
  private readonly periodic: PeriodicPass;

  constructor(private readonly options: StudySchedulerOptions) {
    this.periodic = new PeriodicPass(() => this.advanceAll(), options.intervalMs ?? 2_000, (err) => options.logger.warn({ err }, 'study scheduler pass failed'));
  }

  /** One pass over every running study; returns what each step did (by study id). */
  async advanceAll(): Promise<Map<string, StudyStep>> {
    const { db, logger, maxActiveJobsPerTenant } = this.options;
    const steps = new Map<string, StudyStep>();
    for (const id of await listRunningStudyIds(db)) {
      if (this.periodic.stopped) break;
      try {
        const step = await advanceStudy(db, id, { maxActive: maxActiveJobsPerTenant });
        steps.set(id, step);
        await this.enqueue(id, step);
      } catch (err) {
        // One study's trouble (e.g. a lock timeout) must not stall the others: it is retried next pass.
        logger.warn({ err, studyId: id }, 'study step failed; retried next pass');
      }
    }
    return steps;
  }

  private async enqueue(studyId: string, step: StudyStep): Promise<void> {
    const { queues, logger } = this.options;
    // Written to Postgres already: a lost enqueue is the reconciler's to repair.
    const lost = (err: unknown) => logger.warn({ err, studyId }, 'enqueue failed; the reconciler will enqueue it');
    for (const jobId of step.jobIds) await enqueueMetaTrain(queues, jobId).catch(lost);
    if (step.evaluationId) await enqueueEvaluation(queues, step.evaluationId).catch(lost);
    if (step.rung !== undefined) logger.info({ studyId, rung: step.rung, started: step.jobIds.length }, 'study rung decided; next rung started');
    else if (step.evaluationId) logger.info({ studyId, evaluationId: step.evaluationId }, 'study trials done; evaluating the winner');
    else if (step.ended) logger.info({ studyId, status: step.ended }, 'study ended');
    else if (step.jobIds.length > 0) logger.info({ studyId, started: step.jobIds.length }, 'study trials started');
  }

  /** Runs a pass now and then every interval until stop(); a failed pass is logged and retried next time. */
  start(): this {
    this.periodic.start();
    return this;
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    await this.periodic.stop();
  }
}
