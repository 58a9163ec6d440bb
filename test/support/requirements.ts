/**
 * Tests that need a tool this machine may lack (Chromium, torch, docker-compose; scripts/setup-plan.mjs's
 * TEST_TOOLS). Where it is missing they are skipped, saying what is missing and how
 * `node scripts/setup.mjs --test` installs it; under CI (`CI=true`) they fail with that reason instead,
 * so that CI on a machine without the tool cannot pass having run less.
 */
import { describe, it } from 'vitest';
import { installRoute, TEST_TOOLS, type TestTool } from '../../scripts/setup-plan.mjs';

export interface Requirement {
  tool: TestTool;
  /** Why it is missing here; undefined where it is present. */
  missing?: string;
}

export const requirement = (tool: TestTool, missing: string | undefined): Requirement => ({ tool, missing });

/** CI services set CI=true; any value but empty, "0" or "false" counts. */
export function underCi(env: Record<string, string | undefined> = process.env): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && !['', '0', 'false'].includes(value);
}

export type Verdict = { action: 'run' } | { action: 'skip' | 'fail'; reason: string };

/** Run where the tool is present; elsewhere skip, or under CI fail, saying what is missing and how setup installs it. */
export function verdict({ tool, missing }: Requirement, env: Record<string, string | undefined> = process.env): Verdict {
  if (missing === undefined) return { action: 'run' };
  const { what, neededBy } = TEST_TOOLS[tool];
  const reason = `${what} is missing (${missing}), needed by ${neededBy}: ${installRoute(tool)}`;
  return underCi(env) ? { action: 'fail', reason: `CI=true and ${reason}` } : { action: 'skip', reason };
}

/** describe() for tests that need the tool. Under CI without it, the block is one test that fails with the reason. */
export function describeNeeding(need: Requirement, title: string, body: () => void): void {
  const v = verdict(need);
  if (v.action === 'run') describe(title, body);
  else if (v.action === 'skip') describe.skip(`${title} (skipped: ${v.reason})`, body);
  else {
    describe(title, () => {
      it(`needs ${TEST_TOOLS[need.tool].what}`, () => {
        throw new Error(v.reason);
      });
    });
  }
}

/**
 * For a test that checks another outcome where the tool is missing (a bench that reports why it left
 * PyTorch out): passes without CI, throws the reason under CI.
 */
export function allowMissing(need: Requirement): void {
  const v = verdict(need);
  if (v.action === 'fail') throw new Error(v.reason);
}
