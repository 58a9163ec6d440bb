/**
 * Request validation with TypeBox's compiler (the schemas are TypeBox, so it checks them exactly),
 * and the translation of its errors into one `{ path, message }` per bad field.
 */
import type { FastifyError, FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import { DECIMAL_NUMBER } from '../util/numbers.js';
import type { ValidationIssue } from './schemas/problem.js';

/**
 * Converts text (query, path, header values) to the declared scalar types, strictly: "2.5" is not an
 * integer and "" is not 0 (TypeBox's Value.Convert would say both are), so such input stays text and
 * fails the check with a message naming the field. A lone query value becomes a one-item array.
 */
function fromText(schema: unknown, value: unknown): unknown {
  if (schema === null || typeof schema !== 'object') return value;
  const s = schema as { type?: unknown; items?: unknown; properties?: Record<string, unknown> };
  switch (s.type) {
    case 'number':
    case 'integer':
      return typeof value === 'string' && DECIMAL_NUMBER.test(value) ? Number(value) : value;
    case 'boolean':
      return value === 'true' ? true : value === 'false' ? false : value;
    case 'array':
      return (Array.isArray(value) ? value : [value]).map((item) => fromText(s.items, item));
    case 'object': {
      if (value === null || typeof value !== 'object' || !s.properties) return value;
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      for (const [key, property] of Object.entries(s.properties)) {
        if (out[key] !== undefined) out[key] = fromText(property, out[key]);
      }
      return out;
    }
    default:
      return value;
  }
}

/**
 * Fastify validator compiler. Query strings, params and headers arrive as text and are converted to
 * the declared types; JSON bodies keep their own types ("1" is not a number). Declared defaults are
 * filled in before checking, so handlers see them.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = Compile(schema);
  const isText = httpPart !== 'body';
  // Filling defaults walks schema and value on every request: skip it for schemas that declare none
  // (conservative: any "default" key in the schema keeps it).
  const hasDefaults = declaresDefaults(schema);
  return (input: unknown) => {
    const converted = isText ? fromText(schema, input) : input;
    const value = hasDefaults ? Value.Default(schema, converted) : converted;
    if (checker.Check(value)) {
      // The common case has no NUL: look without building JSON pointers, and name the field only then.
      if (!hasNul(value)) return { value };
      return { error: [nulError(findNul(value, '') ?? '')] };
    }
    return { error: checker.Errors(value) as unknown as FastifySchemaValidationError[] };
  };
};

function declaresDefaults(schema: TSchema): boolean {
  try {
    return JSON.stringify(schema).includes('"default"');
  } catch {
    return true;
  }
}

/** Whether any string in `value` holds U+0000 (see findNul). */
function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) {
    for (const item of value) if (typeof item !== 'number' && hasNul(item)) return true;
    return false;
  }
  for (const key of Object.keys(value)) if (hasNul((value as Record<string, unknown>)[key])) return true;
  return false;
}

/**
 * Postgres text cannot hold U+0000, so a string carrying it would fail in SQL (a 500) after passing
 * the schema: find it here and refuse it as a bad field. Returns the JSON pointer, or null.
 */
function findNul(value: unknown, path: string): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path : null;
  if (value === null || typeof value !== 'object') return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = typeof value[i] === 'number' ? null : findNul(value[i], `${path}/${i}`);
      if (found !== null) return found;
    }
    return null;
  }
  for (const [key, inner] of Object.entries(value)) {
    const found = findNul(inner, `${path}/${token(key)}`);
    if (found !== null) return found;
  }
  return null;
}

function nulError(instancePath: string): FastifySchemaValidationError {
  return { keyword: 'nul', instancePath, schemaPath: '#', params: {}, message: 'must not contain the NUL character (\\u0000)' };
}

/** Which part of the request failed validation, as Fastify names it. */
export type RequestPart = NonNullable<FastifyError['validationContext']>;

const PART: Record<RequestPart, ValidationIssue['in']> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
};

/** Escapes one JSON pointer token (RFC 6901). */
function token(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * One issue per bad field: a missing property is reported at its own path ("is required"), an
 * unknown one too ("is not allowed"), and the branch-by-branch noise of a union collapses into one
 * message (for a union of literals: "must be one of a|b").
 */
export function toIssues(errors: readonly FastifySchemaValidationError[], part: RequestPart | undefined): ValidationIssue[] {
  const where = part ? PART[part] : undefined;
  const unionRoots = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.schemaPath);
  const inBranch = (e: FastifySchemaValidationError) =>
    unionRoots.some((root) => e.schemaPath.startsWith(`${root}/anyOf/`) || e.schemaPath.startsWith(`${root}/oneOf/`));
  const issues: ValidationIssue[] = [];
  const seen = new Set<string>();
  const add = (path: string, message: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    issues.push(where ? { path, message, in: where } : { path, message });
  };

  for (const error of errors) {
    const params = error.params as Record<string, unknown>;
    switch (error.keyword) {
      case 'required':
        for (const name of (params.requiredProperties ?? [params.missingProperty]) as string[]) {
          add(`${error.instancePath}/${token(String(name))}`, 'is required');
        }
        break;
      case 'additionalProperties':
        for (const name of (params.additionalProperties ?? [params.additionalProperty]) as string[]) {
          add(`${error.instancePath}/${token(String(name))}`, 'is not allowed');
        }
        break;
      case 'boolean':
        // `additionalProperties: false` also reports each extra property as "schema is false";
        // the case above already named it.
        break;
      case 'anyOf':
      case 'oneOf': {
        const branches = errors.filter((e) => e.schemaPath.startsWith(`${error.schemaPath}/${error.keyword}/`));
        const literals = branches.every((e) => e.keyword === 'const')
          ? branches.map((e) => String((e.params as Record<string, unknown>).allowedValue))
          : [];
        add(error.instancePath, literals.length > 0 ? `must be one of ${literals.join('|')}` : (error.message ?? 'is invalid'));
        break;
      }
      default:
        if (!inBranch(error)) add(error.instancePath, error.message ?? 'is invalid');
    }
  }
  return issues;
}
