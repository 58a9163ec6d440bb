/**
 * Prequential ("test, then train") scores of appended examples, aggregated over every task of the
 * process: no task id ever becomes a label value (tasks are unbounded; a series per task would be a
 * cardinality bomb). Per-task curves are the API's (`GET /tasks/:id` `live`); these say how served
 * tasks do as a whole, and how far their recent accuracy or error spreads.
 */
import { Counter, Histogram } from 'prom-client';
import { processRegistry } from './registry.js';

const examplesAppended = new Counter({
  name: 'fastadapt_examples_appended_total',
  help: 'Labelled examples appended to tasks (POST /tasks/:id/examples), by task kind and whether a serving head scored them first',
  labelNames: ['kind', 'scored'] as const,
  registers: [processRegistry],
});

const prequentialSquaredError = new Histogram({
  name: 'fastadapt_prequential_squared_error',
  help: 'Regression: squared error of each appended example under the head serving when it arrived (before it joined the support set)',
  buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 100],
  registers: [processRegistry],
});

const prequentialCorrect = new Counter({
  name: 'fastadapt_prequential_examples_total',
  help: 'Classification: appended examples scored by the head serving when they arrived, by outcome (right or wrong)',
  labelNames: ['outcome'] as const,
  registers: [processRegistry],
});

const recentAccuracy = new Histogram({
  name: 'fastadapt_task_live_accuracy',
  help: "Classification: a task's accuracy over its last 100 scored examples, observed at each append that scored",
  buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1],
  registers: [processRegistry],
});

for (const kind of ['regression', 'classification']) for (const scored of ['true', 'false']) examplesAppended.inc({ kind, scored }, 0);
prequentialCorrect.inc({ outcome: 'right' }, 0);
prequentialCorrect.inc({ outcome: 'wrong' }, 0);

/** Records one append: its examples' scores (null: no head to score with) and, when known, the task's recent accuracy. */
export function recordAppend(kind: 'regression' | 'classification', added: number, perExample: readonly number[] | null, recentAccuracyValue: number | null): void {
  examplesAppended.inc({ kind, scored: perExample ? 'true' : 'false' }, added);
  if (!perExample) return;
  if (kind === 'regression') {
    for (const value of perExample) prequentialSquaredError.observe(value);
    return;
  }
  const right = perExample.filter((v) => v === 1).length;
  prequentialCorrect.inc({ outcome: 'right' }, right);
  prequentialCorrect.inc({ outcome: 'wrong' }, perExample.length - right);
  if (recentAccuracyValue !== null) recentAccuracy.observe(recentAccuracyValue);
}
