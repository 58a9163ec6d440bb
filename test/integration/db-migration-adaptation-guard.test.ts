// The migration that adds the inner loop guard must carry stored heads over: heads stored before it
// ran unguarded, so they kept their last step; their raw loss diverged if it ended above where it
// started; their trace was never recorded.
import { describe, expect, it } from 'vitest';
import { databaseBefore, migrationNamed } from './support/migration-scratch.js';

const TARGET = migrationNamed('_adaptation_guard');

describe(`migration ${TARGET}`, () => {
  const scratch = databaseBefore(TARGET);

  it('carries stored heads over: their last step kept, diverged where the loss ended above the start, no trace; adaptations default to guard best', async () => {
    await scratch.client().query(`INSERT INTO tenants (id, name) VALUES ('t', 't')`);
    await scratch.client().query(
      `INSERT INTO meta_train_jobs (id, tenant_id, name, status, algorithm, family_ids, model, hyper, iterations, updated_at)
       VALUES ('j', 't', 'sine', 'succeeded', 'maml', '{}', '{}', '{}', 10, now())`,
    );
    await scratch.client().query(
      `INSERT INTO meta_models (id, tenant_id, name, version, job_id, algorithm, kind, input_dim, model, metrics, params, inner_steps, inner_lr)
       VALUES ('m', 't', 'sine', 1, 'j', 'maml', 'regression', 1, '{}', '{}', '\\x00', 1, 0.01)`,
    );
    await scratch.client().query(`INSERT INTO tasks (id, tenant_id, meta_model_id, kind, input_dim) VALUES ('k', 't', 'm', 'regression', 1)`);
    for (const [version, before, after] of [[1, 3.2, 0.4], [2, 1.5, 7.5]]) {
      await scratch.client().query(
        `INSERT INTO adapted_heads (task_id, version, params, support_loss_before, support_loss_after, steps, inner_lr, duration_ms)
         VALUES ('k', $1, '\\x00', $2, $3, 10, 0.01, 1)`,
        [version, before, after],
      );
    }
    await scratch.client().query(
      `INSERT INTO adaptations (id, tenant_id, task_id, steps, inner_lr, support_size, support_x, support_y) VALUES ('a', 't', 'k', 10, 0.01, 1, '\\x00', '\\x00')`,
    );

    await scratch.applyTarget();

    const { rows } = await scratch.client().query('SELECT version, best_step, diverged, support_loss_trace FROM adapted_heads ORDER BY version');
    expect(rows).toEqual([
      { version: 1, best_step: 10, diverged: false, support_loss_trace: [] },
      { version: 2, best_step: 10, diverged: true, support_loss_trace: [] },
    ]);
    expect((await scratch.client().query('SELECT guard FROM adaptations')).rows).toEqual([{ guard: 'best' }]);
  });
});
