/**
 * Calibration at the end of meta-training (issue 25): the meta-model about to be stored is fitted on
 * its families' validation tasks (src/meta/calibration.ts) and stored with it, yielding to the event
 * loop between chunks of tasks so BullMQ keeps renewing the job's lock (src/util/yielding.ts).
 *
 * A calibration that cannot be fitted (the meta-model is not finite on some validation task, the
 * family cannot draw that many shots) does not fail the job: the meta-model is stored without one,
 * serving answers no intervals for it, and the reason is logged.
 */
import type { Logger } from 'pino';
import { assembleCalibration, calibrationSettingsFor, fitShotsYielding, type Calibration, type MetaModel, type TaskFamily } from '../meta/index.js';

/** `model` calibrated on `family`'s validation tasks for the job's hyper-parameters; undefined when it cannot be. */
export async function calibrateMetaModel(model: MetaModel, family: TaskFamily, hyper: { shots: number; queryShots: number; seed: number }, log: Logger): Promise<Calibration | undefined> {
  const settings = calibrationSettingsFor(hyper);
  const started = Date.now();
  try {
    const fitted = [];
    for (const shots of settings.shots) fitted.push(await fitShotsYielding(model, family, settings, shots));
    const calibration = assembleCalibration(model.spec.kind, settings, fitted);
    log.info({ shots: settings.shots, tasks: settings.tasks, temperature: calibration.temperature, ms: Date.now() - started }, 'meta-model calibrated');
    return calibration;
  } catch (error) {
    log.warn({ err: error }, 'meta-model not calibrated');
    return undefined;
  }
}
