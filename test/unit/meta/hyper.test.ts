/**
 * The one declaration of the hyper-parameters (HYPER_FIELDS) drives the engine's defaults and checks:
 * every declared bound is enforced by resolveHyper, every declared default is applied, and the text
 * the API documents carries the default the engine applies.
 */
import { describe, expect, it } from 'vitest';
import { API_HYPER_NAMES, apiHyper, DEFAULT_HYPER, describeHyper, HYPER_FIELDS, HYPER_NAMES, type HyperField } from '../../../src/meta/hyper.js';
import { resolveHyper, TrainConfigError } from '../../../src/meta/train.js';

const fields = HYPER_NAMES.map((name): [string, HyperField] => [name, HYPER_FIELDS[name]]);
const numeric = fields.filter((entry): entry is [string, Exclude<HyperField, { type: 'boolean' }>] => entry[1].type !== 'boolean');

describe('hyper-parameters declared once', () => {
  it('resolveHyper applies every declared default and leaves the rest unset', () => {
    const resolved = resolveHyper();
    for (const [name, field] of fields) expect(resolved[name as keyof typeof resolved]).toBe(field.default);
    expect(resolved).toEqual(DEFAULT_HYPER);
  });

  it.each(numeric)('resolveHyper enforces the declared lower bound of %s', (name, field) => {
    const below = field.type === 'integer' ? (field.min ?? 1) - 1 : 0;
    expect(() => resolveHyper({ [name]: below })).toThrow(TrainConfigError);
    expect(() => resolveHyper({ [name]: below })).toThrow(`hyper.${name}`);
    if (field.type === 'integer') expect(() => resolveHyper({ [name]: (field.min ?? 1) + 0.5 })).toThrow(TrainConfigError);
    const lowest = field.type === 'integer' ? (field.min ?? 1) : 1e-6;
    expect(resolveHyper({ [name]: lowest })[name as keyof ReturnType<typeof resolveHyper>]).toBe(lowest);
  });

  it.each(fields.filter(([, field]) => field.type === 'boolean'))('resolveHyper takes only true or false for %s', (name) => {
    for (const value of [0, 1, 'true', null]) expect(() => resolveHyper({ [name]: value })).toThrow(`hyper.${name}`);
    expect(resolveHyper({ [name]: true })[name as keyof ReturnType<typeof resolveHyper>]).toBe(true);
  });

  it('documents each default the engine applies', () => {
    for (const [name, field] of fields) {
      const text = describeHyper(name as keyof typeof HYPER_FIELDS);
      expect(text.startsWith(field.description)).toBe(true);
      expect(text).toContain(field.default === undefined ? `Default: ${field.otherwise}` : `Default ${field.default}`);
    }
  });

  it('shows clients only the API fields: the engine-only ones (evalTasks, ways) stay inside', () => {
    expect(API_HYPER_NAMES).not.toContain('evalTasks');
    expect(API_HYPER_NAMES).not.toContain('ways');
    const shown = apiHyper(resolveHyper({ ways: 3, clipNorm: 2 }));
    expect(Object.keys(shown)).toEqual(API_HYPER_NAMES);
    expect(shown).toMatchObject({ clipNorm: 2, iterations: DEFAULT_HYPER.iterations });
  });
});
