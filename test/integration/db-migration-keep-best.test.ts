// The migration that adds keepBest must carry stored jobs over: a job created before it was asked
// for the last iteration's meta-parameters (its meta-model holds them), so it reads keepBest false,
// while a job that already says keepBest keeps what it says; stored meta-models, metrics rows and
// checkpoints gain empty best and interval columns.
import { describe, expect, it } from 'vitest';
import { databaseBefore, migrationNamed } from './support/migration-scratch.js';

const TARGET = migrationNamed('_keep_best');

describe(`migration ${TARGET}`, () => {
  const scratch = databaseBefore(TARGET);

  it('older jobs read keepBest false; their meta-models, metrics and checkpoints have no best and no intervals', async () => {
    const db = scratch.client();
    await db.query(`INSERT INTO tenants (id, name) VALUES ('t', 't')`);
    for (const [id, hyper] of [['old', '{"iterations": 10, "seed": 0}'], ['said', '{"iterations": 10, "keepBest": true}']]) {
      await db.query(
        `INSERT INTO meta_train_jobs (id, tenant_id, name, status, algorithm, family_ids, model, hyper, iterations, updated_at)
         VALUES ($1, 't', $1, 'running', 'maml', '{}', '{}', $2, 10, now())`,
        [id, hyper],
      );
    }
    await db.query(
      `INSERT INTO meta_models (id, tenant_id, name, version, job_id, algorithm, kind, input_dim, model, metrics, params, inner_steps, inner_lr)
       VALUES ('m', 't', 'old', 1, 'old', 'maml', 'regression', 1, '{}', '{}', '\\x00', 1, 0.01)`,
    );
    await db.query(`INSERT INTO job_metrics (job_id, iteration, train_loss, val_loss) VALUES ('old', 10, 1, 2)`);
    await db.query(`INSERT INTO checkpoints (id, job_id, iteration, params, optimizer_state, rng_state) VALUES ('c', 'old', 5, '\\x00', '\\x00', '{}')`);

    await scratch.applyTarget();

    const jobs = await db.query(`SELECT id, hyper, best_iteration, best_metrics FROM meta_train_jobs ORDER BY id`);
    expect(jobs.rows).toEqual([
      { id: 'old', hyper: { iterations: 10, seed: 0, keepBest: false }, best_iteration: null, best_metrics: null },
      { id: 'said', hyper: { iterations: 10, keepBest: true }, best_iteration: null, best_metrics: null },
    ]);
    expect((await db.query(`SELECT best_iteration FROM meta_models`)).rows).toEqual([{ best_iteration: null }]);
    expect((await db.query(`SELECT val_loss_ci95, val_accuracy_ci95 FROM job_metrics`)).rows).toEqual([{ val_loss_ci95: null, val_accuracy_ci95: null }]);
    expect((await db.query(`SELECT best_metrics, best_params FROM checkpoints`)).rows).toEqual([{ best_metrics: null, best_params: null }]);
  });
});
