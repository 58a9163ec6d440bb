// The migration that gives meta-models their inner-loop settings must carry existing rows over: each
// meta-model gets the innerSteps/innerLr its job was trained with (the job's stored hyper), which is
// what adaptation read before the columns existed.
import { describe, expect, it } from 'vitest';
import { databaseBefore, migrationNamed } from './support/migration-scratch.js';

const TARGET = migrationNamed('_meta_model_inner_loop');

describe(`migration ${TARGET}`, () => {
  const scratch = databaseBefore(TARGET);

  it("backfills each meta-model's inner steps and step size from its job's hyper-parameters", async () => {
    await scratch.client().query(`INSERT INTO tenants (id, name) VALUES ('t', 't')`);
    const jobs = [
      { id: 'j1', hyper: { iterations: 10, innerSteps: 5, innerLr: 0.4 } },
      { id: 'j2', hyper: { iterations: 10, innerSteps: 1, innerLr: 0.01 } },
    ];
    for (const [i, job] of jobs.entries()) {
      await scratch.client().query(
        `INSERT INTO meta_train_jobs (id, tenant_id, name, status, algorithm, family_ids, model, hyper, iterations, updated_at)
         VALUES ($1, 't', 'sine', 'succeeded', 'maml', '{}', '{}', $2, 10, now())`,
        [job.id, JSON.stringify(job.hyper)],
      );
      await scratch.client().query(
        `INSERT INTO meta_models (id, tenant_id, name, version, job_id, algorithm, kind, input_dim, model, metrics, params)
         VALUES ($1, 't', 'sine', $2, $3, 'maml', 'regression', 1, '{}', '{}', '\\x00')`,
        [`m${i + 1}`, i + 1, job.id],
      );
    }

    await scratch.applyTarget();

    const { rows } = await scratch.client().query<{ id: string; inner_steps: number; inner_lr: number }>('SELECT id, inner_steps, inner_lr FROM meta_models ORDER BY id');
    expect(rows).toEqual([
      { id: 'm1', inner_steps: 5, inner_lr: 0.4 },
      { id: 'm2', inner_steps: 1, inner_lr: 0.01 },
    ]);
    const { rows: columns } = await scratch.client().query<{ column_name: string; is_nullable: string }>(
      `SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'meta_models' AND column_name LIKE 'inner_%' ORDER BY column_name`,
    );
    expect(columns).toEqual([{ column_name: 'inner_lr', is_nullable: 'NO' }, { column_name: 'inner_steps', is_nullable: 'NO' }]);
  });
});
