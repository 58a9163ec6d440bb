/**
 * Runtime validation of family parameters. Parameters arrive as JSON from the API, so every reader
 * checks type and range itself and names the offending field by its path (e.g.
 * `generator.params.amplitude`), which the HTTP layer turns into a problem+json `errors[].path`.
 */

/** A family specification or parameter is invalid; `path` names the field. */
export class FamilySpecError extends Error {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(path ? `${path}: ${detail}` : detail);
    this.name = 'FamilySpecError';
  }
}

/** Largest magnitude accepted for any range bound: keeps generated targets far from float32 overflow. */
export const MAX_PARAM_MAGNITUDE = 1e6;

export type RawParams = Record<string, unknown>;

export function isRecord(value: unknown): value is RawParams {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks `raw` is an object (or absent) holding only `allowed` keys. */
export function readParams(raw: unknown, path: string, allowed: readonly string[]): RawParams {
  if (raw === undefined) return {};
  if (!isRecord(raw)) throw new FamilySpecError(path, 'must be an object');
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) {
      throw new FamilySpecError(`${path}.${key}`, `unknown parameter; expected one of ${allowed.join(', ')}`);
    }
  }
  return raw;
}

export interface NumberRule {
  min?: number;
  max?: number;
  integer?: boolean;
}

/** Validates a number against a rule; `path` names it in the error. */
export function checkNumber(value: unknown, path: string, rule: NumberRule = {}): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new FamilySpecError(path, 'must be a finite number');
  if (rule.integer && !Number.isInteger(value)) throw new FamilySpecError(path, 'must be an integer');
  const min = rule.min ?? -MAX_PARAM_MAGNITUDE;
  const max = rule.max ?? MAX_PARAM_MAGNITUDE;
  if (value < min || value > max) throw new FamilySpecError(path, `must be between ${min} and ${max}`);
  return value;
}

/** `params[key]` as a number, or `fallback` when absent. */
export function numberParam(params: RawParams, key: string, path: string, fallback: number, rule: NumberRule = {}): number {
  const value = params[key];
  return value === undefined ? fallback : checkNumber(value, `${path}.${key}`, rule);
}

/** `params[key]` as a `[low, high]` interval with low <= high, or `fallback` when absent. */
export function rangeParam(
  params: RawParams,
  key: string,
  path: string,
  fallback: readonly [number, number],
  rule: NumberRule = {},
): [number, number] {
  const value = params[key];
  if (value === undefined) return [fallback[0], fallback[1]];
  const where = `${path}.${key}`;
  if (!Array.isArray(value) || value.length !== 2) throw new FamilySpecError(where, 'must be a [low, high] pair');
  const low = checkNumber(value[0], `${where}[0]`, rule);
  const high = checkNumber(value[1], `${where}[1]`, rule);
  if (low > high) throw new FamilySpecError(where, `low (${low}) must not exceed high (${high})`);
  return [low, high];
}
