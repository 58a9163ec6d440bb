/**
 * The inner loop's guard: adaptation tracks the support loss at every step and, by default, returns
 * the iterate with the lowest one, so it never hands back parameters that fit the support set worse
 * than the meta-model did (a step size too large for a task makes plain gradient descent diverge:
 * Meta-SGD's learned rates run past the steps they were meta-trained for, MAML on a rare task).
 * Both engines apply the same rule while they step (tfjs: inner-loop.ts, fused: fused/index.ts);
 * this file declares the policy and reads a trace.
 */

/** 'best': the iterate with the lowest support loss (step 0 included); 'none': the raw last iterate. */
export const GUARD_POLICIES = ['best', 'none'] as const;

export type GuardPolicy = (typeof GUARD_POLICIES)[number];

export const DEFAULT_GUARD: GuardPolicy = 'best';

/** What one task's inner loop went through. */
export interface SupportLossTrace {
  /** Mean support loss before each step and after the last: steps + 1 values, step 0 first. */
  trace: number[];
  /** The step whose parameters were returned (the last step with guard 'none'). */
  bestStep: number;
  /** The raw loss rose above the starting one at some step, or went non-finite. */
  diverged: boolean;
}

/**
 * Whether step `loss` replaces the best so far. Strictly lower, so a tie keeps the earlier iterate
 * and a non-finite loss never wins; both engines decide with this rule.
 */
export function improves(loss: number, best: number): boolean {
  return loss < best;
}

/** Summarises a task's per-step support losses under a policy (the same choice the loop made). */
export function readTrace(trace: number[], policy: GuardPolicy): SupportLossTrace {
  const start = trace[0];
  const diverged = trace.some((loss) => !Number.isFinite(loss) || loss > start);
  let bestStep = trace.length - 1;
  if (policy === 'best') {
    bestStep = 0;
    trace.forEach((loss, step) => {
      if (improves(loss, trace[bestStep])) bestStep = step;
    });
  }
  return { trace, bestStep, diverged };
}
