// The rule for tests that need a tool this machine may lack (test/support/requirements.ts): run where
// it is present; skip where it is missing, saying what and how setup installs it; fail under CI.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { allowMissing, requirement, underCi, verdict } from '../support/requirements.js';

describe('requirements of tests', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('runs where the tool is present, under CI or not', () => {
    expect(verdict(requirement('chromium', undefined), {})).toEqual({ action: 'run' });
    expect(verdict(requirement('torch', undefined), { CI: 'true' })).toEqual({ action: 'run' });
  });

  it('skips where it is missing, saying what is missing and how setup installs it', () => {
    const v = verdict(requirement('torch', 'no Python with torch among /usr/bin/python3, python3'), {});
    expect(v.action).toBe('skip');
    const reason = (v as { reason: string }).reason;
    expect(reason).toMatch(/^a Python with torch .* is missing \(no Python with torch among \/usr\/bin\/python3, python3\), needed by the PyTorch parity tests/);
    expect(reason).toContain('`node scripts/setup.mjs --test` (run by `npm test`) installs it with `apt-get install python3-torch` when it runs as root');
    expect(verdict(requirement('chromium', '/usr/bin/chromium not found'), {})).toEqual({ action: 'skip', reason: expect.stringMatching(/^Chromium \(\/usr\/bin\/chromium\) is missing .*dashboard browser test.*apt-get install chromium/) });
  });

  it('fails with the same reason under CI', () => {
    const missing = requirement('chromium', '/usr/bin/chromium not found');
    const skip = verdict(missing, {}) as { reason: string };
    for (const CI of ['true', '1', 'TRUE', 'yes']) expect(verdict(missing, { CI })).toEqual({ action: 'fail', reason: `CI=true and ${skip.reason}` });
    for (const CI of [undefined, '', '0', 'false', 'False']) expect(verdict(missing, { CI }).action, String(CI)).toBe('skip');
    expect(underCi({ CI: ' true ' })).toBe(true);
  });

  it('lets a test check the other outcome where the tool is missing, except under CI', () => {
    const missing = requirement('torch', 'no Python with torch among python-that-is-not-here');
    vi.stubEnv('CI', 'false');
    expect(() => allowMissing(missing)).not.toThrow();
    vi.stubEnv('CI', 'true');
    expect(() => allowMissing(missing)).toThrow(/^CI=true and a Python with torch .* is missing \(no Python with torch among python-that-is-not-here\).*apt-get install python3-torch/);
    expect(() => allowMissing(requirement('torch', undefined))).not.toThrow();
  });
});
