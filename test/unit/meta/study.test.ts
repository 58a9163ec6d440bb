/**
 * Studies, the pure part (issue 23 item 3): the default search space (every algorithm that suits
 * the kind, zero head only where a head is meta-learned, the inner-loop grid spread, round robin)
 * and how much of it a default study tries; the
 * successive-halving schedule against a brute-force cost, within budget, and a default study at
 * most 4x one default run; the promotion rule against a plain sort; the decision rule's three
 * outcomes in both directions; and the judging of evaluation rows (a baseline that is the winner
 * itself left out).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, getAlgorithm } from '../../../src/meta/algorithms/index.js';
import type { EvaluationRow } from '../../../src/meta/evaluation.js';
import { DEFAULT_HYPER } from '../../../src/meta/hyper.js';
import {
  decidePromotion,
  defaultSearchSpace,
  DEFAULT_STUDY_COST_FACTOR,
  DEFAULT_STUDY_ITERATIONS,
  defaultTrials,
  judgeEvaluation,
  promoted,
  rungTrials,
  STUDY_ETA,
  STUDY_FINALISTS,
  STUDY_MAX_HALVINGS,
  scheduleCost,
  STUDY_INNER_LRS,
  STUDY_INNER_STEPS,
  StudyBudgetError,
  studySchedule,
} from '../../../src/meta/study.js';

describe('defaultSearchSpace', () => {
  for (const kind of ['regression', 'classification'] as const) {
    it(`${kind}: every suitable algorithm, the inner-loop grid, zero head where a head is meta-learned, no duplicates`, () => {
      const space = defaultSearchSpace(kind);
      const suitable = ALGORITHM_NAMES.filter((name) => getAlgorithm(name).kinds.includes(kind));
      expect(new Set(space.map((c) => c.algorithm))).toEqual(new Set(suitable));
      expect(space.some((c) => c.algorithm === 'protonet')).toBe(kind === 'classification');
      expect(space.some((c) => c.algorithm === 'multitask')).toBe(true);
      for (const name of suitable) {
        const algorithm = getAlgorithm(name);
        const own = space.filter((c) => c.algorithm === name);
        const expected = algorithm.runsInnerSteps ? STUDY_INNER_LRS[kind].length * STUDY_INNER_STEPS.length * (algorithm.metaTrainsHead ? 2 : 1) : 1;
        expect(own).toHaveLength(expected);
        if (!algorithm.metaTrainsHead) expect(own.every((c) => !c.hyper.zeroHead)).toBe(true);
      }
      expect(new Set(space.map((c) => JSON.stringify(c))).size).toBe(space.length);
      // Round robin: the first |algorithms| candidates are one of each, each with its plainest settings (the defaults).
      expect(new Set(space.slice(0, suitable.length).map((c) => c.algorithm)).size).toBe(suitable.length);
      for (const c of space.slice(0, suitable.length)) {
        if (getAlgorithm(c.algorithm).runsInnerSteps) expect(c.hyper).toEqual({ innerLr: DEFAULT_HYPER.innerLr, innerSteps: DEFAULT_HYPER.innerSteps, zeroHead: false });
      }
    });
  }

  it("each algorithm's settings spread over the grid: the opposite corner second, then farthest from those taken; zero head after", () => {
    for (const kind of ['regression', 'classification'] as const) {
      const maml = defaultSearchSpace(kind).filter((c) => c.algorithm === 'maml').map((c) => c.hyper);
      const [lrs, steps] = [STUDY_INNER_LRS[kind], STUDY_INNER_STEPS];
      const half = lrs.length * steps.length;
      expect(maml.slice(0, 2)).toEqual([
        { innerLr: lrs[0], innerSteps: steps[0], zeroHead: false },
        { innerLr: lrs[lrs.length - 1], innerSteps: steps[steps.length - 1], zeroHead: false },
      ]);
      // Third: of the settings equidistant from both corners, the first in grid order (one step, the largest step size).
      expect(maml[2]).toEqual({ innerLr: lrs[lrs.length - 1], innerSteps: steps[0], zeroHead: false });
      // Every prefix of 2 or more holds both step counts and both ends of the step sizes.
      for (let k = 2; k <= half; k++) {
        expect(new Set(maml.slice(0, k).map((h) => h.innerSteps)).size).toBe(2);
        expect(maml.slice(0, k).map((h) => h.innerLr)).toEqual(expect.arrayContaining([lrs[0], lrs[lrs.length - 1]]));
      }
      // The zero head: the same settings in the same order, after all of those without it.
      expect(maml.slice(half)).toEqual(maml.slice(0, half).map((h) => ({ ...h, zeroHead: true })));
    }
  });
});

describe('defaultTrials', () => {
  it('the default budget: 14 candidates, rungs from a ninth of the top, finalists trained one default run, within 4x', () => {
    for (const kind of ['regression', 'classification'] as const) {
      const space = defaultSearchSpace(kind);
      const n = defaultTrials(space, DEFAULT_STUDY_ITERATIONS);
      expect(n).toBe(14);
      const { rungs, cost } = studySchedule(n, DEFAULT_STUDY_ITERATIONS);
      const top = rungs[rungs.length - 1].iterations;
      expect(rungs.map((r) => r.trials)).toEqual([14, 4, STUDY_FINALISTS]);
      expect(rungs[0].iterations).toBeGreaterThanOrEqual(Math.floor(top / STUDY_ETA ** STUDY_MAX_HALVINGS));
      expect(top).toBeGreaterThanOrEqual(DEFAULT_HYPER.iterations);
      expect(cost).toBeLessThanOrEqual(DEFAULT_STUDY_COST_FACTOR * DEFAULT_HYPER.iterations);
      // One more candidate would train the finalists less than one default run.
      const more = studySchedule(n + 1, DEFAULT_STUDY_ITERATIONS).rungs;
      expect(more[more.length - 1].iterations).toBeLessThan(DEFAULT_HYPER.iterations);
      // Each algorithm's first two settings are in (classification: two algorithms have one setting).
      for (const name of new Set(space.map((c) => c.algorithm))) {
        const own = space.filter((c) => c.algorithm === name).length;
        expect(space.slice(0, n).filter((c) => c.algorithm === name).length).toBeGreaterThanOrEqual(Math.min(own, 2));
      }
    }
  });

  it('any budget: the most candidates within the halving and top-rung rules, never fewer than one per algorithm', () => {
    const space = defaultSearchSpace('classification');
    const algorithms = new Set(space.map((c) => c.algorithm)).size;
    // The rules on the schedule itself: the first rung at a ninth of the top (not a 27th), the top at least one default run.
    const fits = (n: number, budget: number) => {
      if (budget < scheduleCost(rungTrials(n).map((trials, k) => ({ trials, iterations: k + 1 })))) return false;
      const { rungs } = studySchedule(n, budget);
      const top = rungs[rungs.length - 1].iterations;
      return rungs[0].iterations >= Math.round(top / STUDY_ETA ** STUDY_MAX_HALVINGS) && top >= DEFAULT_HYPER.iterations;
    };
    fc.assert(fc.property(fc.integer({ min: 50, max: 200_000 }), (budget) => {
      const n = defaultTrials(space, budget);
      expect(n).toBeGreaterThanOrEqual(algorithms);
      expect(n).toBeLessThanOrEqual(space.length);
      if (n > algorithms) expect(fits(n, budget)).toBe(true);
      for (let m = Math.max(n, algorithms) + 1; m <= space.length; m++) expect(fits(m, budget)).toBe(false);
    }), { numRuns: 60 });
    // A space smaller than the algorithms: all of it.
    expect(defaultTrials(space.slice(0, 3), 10)).toBe(3);
  });
});

describe('studySchedule', () => {
  it('rung sizes shrink by eta to the two finalists, leaving out a rung that would promote all its trials', () => {
    expect(rungTrials(42, 3)).toEqual([42, 14, 4, 2]);
    expect(rungTrials(62, 3)).toEqual([62, 20, 6, 2]);
    expect(rungTrials(6, 3)).toEqual([6, 2]);
    expect(rungTrials(3, 3)).toEqual([3, 2]);
    expect(rungTrials(2, 3)).toEqual([2]);
    expect(rungTrials(1, 3)).toEqual([1]);
  });

  it('milestones grow eta-fold, and the finalists train from where successive halving would have picked them to the top', () => {
    // Classical: 62@top/81, 20@top/27, 6@top/9, 2@top/3, 1@top. Here the 2@top/3 rung is left out and both finalists reach the top.
    const { rungs } = studySchedule(62, 81 * 100);
    const top = rungs[rungs.length - 1].iterations;
    expect(rungs.map((r) => r.trials)).toEqual([62, 20, 6, 2]);
    expect(rungs.map((r) => r.iterations)).toEqual([top / 81, top / 27, top / 9, top].map(Math.round));
    // Two candidates: no halving at all, both train to the top on half the budget each.
    expect(studySchedule(2, 3000).rungs).toEqual([{ trials: 2, iterations: 1500 }]);
  });

  it('cost counts only increments: a brute-force sum over trials', () => {
    const rungs = [{ trials: 9, iterations: 10 }, { trials: 3, iterations: 30 }, { trials: 1, iterations: 90 }];
    // Each trial's iterations are those of the last rung it reached.
    const reached = [...Array(6).fill(10), ...Array(2).fill(30), 90];
    expect(scheduleCost(rungs)).toBe(reached.reduce((a, b) => a + b, 0));
  });

  it('stays within the budget, grows iterations by rung, and uses most of the budget; refuses only a budget below one iteration more per rung', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 10, max: 20_000 }), (candidates, budget) => {
      const trials = rungTrials(candidates);
      const least = scheduleCost(trials.map((n, k) => ({ trials: n, iterations: k + 1 })));
      if (budget < least) {
        expect(() => studySchedule(candidates, budget)).toThrow(StudyBudgetError);
        return;
      }
      const { rungs, cost } = studySchedule(candidates, budget);
      expect(cost).toBe(scheduleCost(rungs));
      expect(cost).toBeLessThanOrEqual(budget);
      expect(rungs.map((r) => r.trials)).toEqual(trials);
      rungs.slice(1).forEach((rung, k) => expect(rung.iterations).toBeGreaterThan(rungs[k].iterations));
      // Rounding to whole iterations per rung costs little once the budget is ample.
      if (budget >= 20 * least) expect(cost).toBeGreaterThan(budget * 0.8);
    }));
  });

  it('the top rung is capped by maxIterations; a budget too small is refused', () => {
    expect(studySchedule(1, 10_000, { maxIterations: 500 }).rungs).toEqual([{ trials: 1, iterations: 500 }]);
    expect(() => studySchedule(9, 5)).toThrow(StudyBudgetError);
  });
});

describe('promoted', () => {
  it('is a plain sort by the metric (ties: lower candidate), pruned trials never promoted', () => {
    fc.assert(fc.property(fc.array(fc.option(fc.integer({ min: 0, max: 20 }), { nil: null }), { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 30 }), (means, count) => {
      const scores = means.map((mean, candidate) => ({ candidate, mean }));
      const scored = scores.filter((s): s is { candidate: number; mean: number } => s.mean !== null);
      const byLoss = [...scored].sort((a, b) => a.mean - b.mean || a.candidate - b.candidate).slice(0, count).map((s) => s.candidate);
      const byAccuracy = [...scored].sort((a, b) => b.mean - a.mean || a.candidate - b.candidate).slice(0, count).map((s) => s.candidate);
      expect(promoted(scores, 'loss', count)).toEqual(byLoss);
      expect(promoted(scores, 'accuracy', count)).toEqual(byAccuracy);
    }));
  });
});

describe('decidePromotion', () => {
  it('accuracy: beaten only when the intervals are apart in the winner\'s favour', () => {
    const decision = decidePromotion('accuracy', { mean: 0.9, ci95: 0.02 }, [
      { method: 'scratch', mean: 0.6, ci95: 0.05 },
      { method: 'raw', mean: 0.86, ci95: 0.03 },
      { method: 'multitask', mean: 0.97, ci95: 0.01 },
    ]);
    expect(decision.baselines.map((b) => b.outcome)).toEqual(['beaten', 'tied', 'won']);
    expect(decision.beatsAll).toBe(false);
    expect(decision.reason).toContain('raw ties');
    expect(decision.reason).toContain('multitask wins');
    expect(decision.reason).not.toContain('scratch');
  });

  it('loss: lower is better; every baseline beaten promotes', () => {
    const decision = decidePromotion('loss', { mean: 0.1, ci95: 0.02 }, [{ method: 'unadapted', mean: 2, ci95: 0.3 }, { method: 'raw', mean: 0.5, ci95: 0.1 }]);
    expect(decision.beatsAll).toBe(true);
    expect(decision.baselines.every((b) => b.outcome === 'beaten')).toBe(true);
    expect(decidePromotion('loss', { mean: 0.45, ci95: 0.02 }, [{ method: 'raw', mean: 0.5, ci95: 0.1 }]).baselines[0].outcome).toBe('tied');
    expect(decidePromotion('loss', { mean: 0.9, ci95: 0.02 }, [{ method: 'raw', mean: 0.5, ci95: 0.1 }]).baselines[0].outcome).toBe('won');
  });

  it('no baseline measured: not promoted', () => {
    expect(decidePromotion('loss', { mean: 0.1, ci95: 0.01 }, []).beatsAll).toBe(false);
  });
});

describe('judgeEvaluation', () => {
  const row = (method: EvaluationRow['method'], shots: number, accuracy: number): EvaluationRow => ({ method, shots, steps: 0, loss: { mean: 1 - accuracy, ci95: 0.01 }, accuracy: { mean: accuracy, ci95: 0.01 }, diverged: 0 });
  const rows = [row('adapted', 5, 0.9), row('unadapted', 5, 0.9), row('scratch', 5, 0.5), row('multitask', 5, 0.9), row('adapted', 1, 0.2), row('scratch', 1, 0.95)];

  it('ProtoNets: its unadapted row is the same computation and is left out; multitask is the winner itself', () => {
    const judged = judgeEvaluation(rows, { metric: 'accuracy', shots: 5, algorithm: 'protonet', multitaskIsWinner: true });
    expect(judged.winner.mean).toBe(0.9);
    expect(judged.baselines.map((b) => b.method)).toEqual(['scratch']);
    expect(judged.beatsAll).toBe(true);
  });

  it('MAML: unadapted and another multitask model are baselines, and they tie', () => {
    const judged = judgeEvaluation(rows, { metric: 'accuracy', shots: 5, algorithm: 'maml', multitaskIsWinner: false });
    expect(judged.baselines.map((b) => [b.method, b.outcome])).toEqual([['unadapted', 'tied'], ['scratch', 'beaten'], ['multitask', 'tied']]);
    expect(judged.beatsAll).toBe(false);
  });

  it('regression judges the loss; a missing adapted row is refused', () => {
    const judged = judgeEvaluation(rows, { metric: 'loss', shots: 5, algorithm: 'maml', multitaskIsWinner: false });
    expect(judged.winner.mean).toBeCloseTo(0.1);
    expect(() => judgeEvaluation(rows, { metric: 'loss', shots: 10, algorithm: 'maml', multitaskIsWinner: false })).toThrow(RangeError);
  });
});
