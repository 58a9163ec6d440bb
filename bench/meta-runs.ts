/**
 * bench:meta's timing over runs: `--runs` runs of meta-timing.ts's timing, each with the load average
 * at its start and end, and each row over the runs (the median of every run's figure with its [min,
 * max]), which is what the results file's rows and the README's ratios quote: never one run's figure.
 */

import { loadavg } from 'node:os';
import type { AlgorithmName } from '../src/meta/index.js';
import { byForm, median, mostRounds, round, timing, type PytorchForm, type Range, type Row, type TimingOptions } from './meta-timing.js';
import type { PytorchServer } from './pytorch/baseline.js';

/** os.loadavg() (1, 5 and 15 minutes), rounded. */
export const loadAverage = () => loadavg().map((v) => round(v, 2));

/** The load average at the start and at the end of a section of the results file. */
export interface LoadSpan {
  start: number[];
  end: number[];
}

/** Runs `section` and returns its result with the load average at its start and end. */
export async function withLoad<T>(section: () => Promise<T>): Promise<{ result: T; load: LoadSpan }> {
  const start = loadAverage();
  const result = await section();
  return { result, load: { start, end: loadAverage() } };
}

/** A row over runs: the median over runs of each run's figure, with [min, max] over runs. */
export interface SummaryRow {
  algorithm: AlgorithmName;
  backend: string;
  task: string;
  runs: number;
  msPerIteration: number;
  msPerIterationRange: Range;
  naiveLoopMsPerIteration: number;
  naiveLoopMsPerIterationRange: Range;
  speedup: number;
  pytorchMsPerIteration?: Record<PytorchForm, number>;
  pytorchMsPerIterationRange?: Record<PytorchForm, Range>;
  /** The form fastest in most rounds of all runs, and the rounds each form was fastest in. */
  pytorchFastestForm?: PytorchForm;
  pytorchFastestRounds?: Record<PytorchForm, number>;
  /** The headline: the median over runs of each run's speedupVsPytorch, and their range. */
  speedupVsPytorch?: number;
  speedupVsPytorchRange?: Range;
}

export interface TimingRun {
  run: number;
  loadAverage: LoadSpan;
  rows: Row[];
}

/** Each row's figures over `runs` (its own key: algorithm, backend, task). */
export function summarise(runs: TimingRun[]): SummaryRow[] {
  const key = (r: Row) => `${r.algorithm}|${r.backend}|${r.task}`;
  const groups = new Map<string, Row[]>();
  for (const r of runs.flatMap((run) => run.rows)) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  const over = (rs: Row[], pick: (r: Row) => number, digits = 3) => ({ median: round(median(rs.map(pick)), digits), range: [round(Math.min(...rs.map(pick)), digits), round(Math.max(...rs.map(pick)), digits)] as Range });
  return [...groups.values()].map((rs) => {
    const ms = over(rs, (r) => r.msPerIteration);
    const loop = over(rs, (r) => r.naiveLoopMsPerIteration);
    const row: SummaryRow = {
      algorithm: rs[0].algorithm,
      backend: rs[0].backend,
      task: rs[0].task,
      runs: rs.length,
      msPerIteration: ms.median,
      msPerIterationRange: ms.range,
      naiveLoopMsPerIteration: loop.median,
      naiveLoopMsPerIterationRange: loop.range,
      speedup: over(rs, (r) => r.speedup, 2).median,
    };
    if (rs.every((r) => r.pytorchMsPerIteration)) {
      const forms = byForm((form) => over(rs, (r) => r.pytorchMsPerIteration![form]));
      const counts = byForm((form) => rs.reduce((n, r) => n + r.pytorchFastestRounds![form], 0));
      const ratio = over(rs, (r) => r.speedupVsPytorch!, 2);
      Object.assign(row, {
        pytorchMsPerIteration: byForm((form) => forms[form].median),
        pytorchMsPerIterationRange: byForm((form) => forms[form].range),
        pytorchFastestForm: mostRounds(counts),
        pytorchFastestRounds: counts,
        speedupVsPytorch: ratio.median,
        speedupVsPytorchRange: ratio.range,
      });
    }
    return row;
  });
}

/** `options.runs` runs of `timing`, each with its load average, and the rows over them. */
export async function timingRuns(paths: string[], options: TimingOptions, pytorch: PytorchServer | null): Promise<{ runs: TimingRun[]; rows: SummaryRow[] }> {
  const runs: TimingRun[] = [];
  for (let run = 1; run <= options.runs; run++) {
    console.log(`\ntiming run ${run} of ${options.runs} (load average ${loadAverage().join(', ')})`);
    const { result: rows, load } = await withLoad(() => timing(paths, options, pytorch, run));
    runs.push({ run, loadAverage: load, rows });
  }
  return { runs, rows: summarise(runs) };
}

export function printTable(rows: SummaryRow[]): void {
  const x = (v?: number, range?: Range) => (v === undefined ? '-' : `x${v.toFixed(2)}${range ? ` [${range.map((r) => r.toFixed(2)).join('-')}]` : ''}`).padStart(18);
  const ms = (v?: number, range?: Range) => (v === undefined ? '-' : `${v.toFixed(2)}${range ? ` [${range.map((r) => r.toFixed(2)).join('-')}]` : ''}`).padStart(19);
  const runs = rows[0]?.runs ?? 0;
  console.log(`\nms per meta-iteration, median over ${runs} run(s) [min-max over runs]: engine batched, engine per-task loop, each PyTorch form; ` +
    'engine x: per round the fastest PyTorch form over the engine batched, median over rounds, then over runs (the headline ratio)');
  console.log(`algorithm  backend   ${'engine'.padStart(19)} ${'eng.loop'.padStart(8)} ${'PT batched'.padStart(9)} ${'functorch'.padStart(9)} ${'PT loop'.padStart(9)}  fastest    ${'engine x'.padStart(18)}  task`);
  const f = (v?: number) => (v === undefined ? '-' : v.toFixed(2)).padStart(9);
  for (const r of rows) {
    const p = r.pytorchMsPerIteration;
    console.log(
      `${r.algorithm.padEnd(10)} ${r.backend.padEnd(8)}${ms(r.msPerIteration, r.msPerIterationRange)} ${r.naiveLoopMsPerIteration.toFixed(2).padStart(8)}${f(p?.batched)} ${f(p?.functorch)} ${f(p?.loop)}  ${(r.pytorchFastestForm ?? '-').padEnd(9)} ${x(r.speedupVsPytorch, r.speedupVsPytorchRange)}  ${r.task}`,
    );
  }
}
