/**
 * fast-check generators of hostile HTTP requests for one route: near-valid bodies built from the
 * route's JSON Schema and then broken in one place, arbitrary JSON, malformed JSON text, deep and
 * huge arrays, numbers as strings ("NaN", "Infinity", "1e309"), wrong content types, bad or foreign
 * ids, unknown fields, query strings and headers of the wrong type.
 */
import fc from 'fast-check';
import type { FuzzRoute, JsonSchema } from './routes.js';

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** A JSON value (sent as application/json unless headers say otherwise), raw text, or nothing. */
  payload?: string;
}

/** What a generated request may use: ids of the fuzz tenant's own resources, another tenant's, keys. */
export interface FuzzContext {
  authorization: string;
  /** Ids that name something: the tenant's own (some), another tenant's (must answer 404). */
  knownIds: string[];
}

/** Text that looks like a number, or is a classic injection or path trick. */
const hostileText = fc.constantFrom(
  'NaN', 'Infinity', '-Infinity', '1e309', '-1e309', '1e-400', '-0', '0x1F', '1_000', '２', '',
  ' ', '\u0000', '\uFFFF', '\uD800', 'null', 'true', 'false', '[]', '{}', '[1,2', '%00', '%zz', '../..',
  '..%2F..%2Fetc%2Fpasswd', "'; DROP TABLE tenants; --", '<script>alert(1)</script>', '9'.repeat(400),
  '1,2,3', '1;2', '0.5,NaN', 'x'.repeat(5000), '__proto__', 'constructor', '@', 'a@b@c', 'sine@-1', 'sine@99999999999999999999',
);

const hostileNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1, 2 ** 31, 2 ** 31 - 1, 2 ** 53 + 2, -(2 ** 53) - 2, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 1e308, 0.1, 1e-320),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** A JSON value a schema would not expect. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileText },
  { weight: 3, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, {}, [], [[]], [null], { '': 1 }, { __proto__: 1 }) },
  { weight: 1, arbitrary: fc.array(hostileNumber, { maxLength: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }).map((depth) => nested(depth)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2000 }).map((length) => Array.from({ length }, (_, i) => i % 7)) },
);

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value };
  return value;
}

/** A value that satisfies `schema` (as far as a generator without a solver can), kept small. */
export function validValue(schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 8) return fc.constant(null);
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  const branches = (schema.anyOf ?? schema.oneOf) as JsonSchema[] | undefined;
  if (branches?.length) return fc.oneof(...branches.map((b) => validValue(b, depth + 1)));
  const type = Array.isArray(schema.type) ? (schema.type as string[])[0] : (schema.type as string | undefined);
  const num = (key: string) => (typeof schema[key] === 'number' ? (schema[key] as number) : undefined);
  switch (type) {
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
      const required = new Set((schema.required ?? []) as string[]);
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [key, value] of Object.entries(properties)) record[key] = validValue(value, depth + 1);
      return fc.record(record, { requiredKeys: Object.keys(properties).filter((k) => required.has(k)) });
    }
    case 'array': {
      const min = num('minItems') ?? 0;
      const max = Math.min(num('maxItems') ?? min + 6, min + 6);
      return fc.array(validValue(schema.items as JsonSchema | undefined, depth + 1), { minLength: min, maxLength: Math.max(min, max) });
    }
    case 'integer': {
      const min = num('minimum') ?? (num('exclusiveMinimum') !== undefined ? num('exclusiveMinimum')! + 1 : -1000);
      const max = num('maximum') ?? (num('exclusiveMaximum') !== undefined ? num('exclusiveMaximum')! - 1 : 1000);
      // Small values are what a real client sends; the bounds are where bugs live.
      return fc.oneof(fc.integer({ min, max: Math.min(max, Math.max(min, min + 20)) }), fc.constantFrom(min, max));
    }
    case 'number': {
      const min = num('minimum') ?? num('exclusiveMinimum') ?? -10;
      const max = num('maximum') ?? num('exclusiveMaximum') ?? 10;
      const hi = Math.min(max, min + 10);
      return fc.double({ min, max: hi, noNaN: true, noDefaultInfinity: true, minExcluded: num('exclusiveMinimum') !== undefined, maxExcluded: hi === max && num('exclusiveMaximum') !== undefined });
    }
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'string': {
      const min = num('minLength') ?? 0;
      const max = Math.min(num('maxLength') ?? 12, min + 12);
      if (typeof schema.pattern === 'string') return fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length >= min && s.length <= (num('maxLength') ?? Infinity));
      return fc.string({ minLength: min, maxLength: Math.max(min, max) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Breaks `value` in one place: a leaf replaced, a key dropped or added, an array grown huge or deep. */
function breakOnce(value: unknown, pick: number[], replacement: unknown, unknownKey: string): unknown {
  if (value === null || typeof value !== 'object' || pick.length === 0) return replacement;
  const [choice, ...rest] = pick;
  if (Array.isArray(value)) {
    if (value.length === 0 || choice % 5 === 0) return [...value, replacement];
    const copy = [...value];
    const at = choice % copy.length;
    copy[at] = breakOnce(copy[at], rest, replacement, unknownKey);
    return copy;
  }
  const record = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(record);
  if (keys.length === 0 || choice % 7 === 0) return { ...record, [unknownKey]: replacement };
  const key = keys[choice % keys.length];
  if (choice % 7 === 1) {
    delete record[key];
    return record;
  }
  record[key] = breakOnce(record[key], rest, replacement, unknownKey);
  return record;
}

/** A body near the schema: valid (so success paths run too) or broken in exactly one place. */
function nearValid(schema: JsonSchema | undefined, context: FuzzContext): fc.Arbitrary<unknown> {
  const idLike = fc.constantFrom(...context.knownIds);
  return fc.tuple(
    validValue(schema),
    fc.nat({ max: 9 }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
    fc.oneof(hostileJson, idLike),
    fc.constantFrom('extra', '__proto__', 'constructor', 'id', 'tenantId', ''),
  ).map(([valid, mode, pick, replacement, key]) => (mode < 3 ? valid : breakOnce(valid, pick, replacement, key)));
}

const contentTypes = fc.constantFrom(
  'application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain',
  'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream',
  'application/json; charset=utf-16', 'application/problem+json', 'APPLICATION/JSON', '*/*', '',
  // Uploaded parts' media types (PUT /task-families/:id/parts/:n).
  'text/csv', 'application/x-ndjson', 'TEXT/CSV; charset=utf-8',
);

/** Part bodies that are almost rows: bad headers, wrong column counts, NaN, unclosed quotes, huge lines. */
const rowText = fc.oneof(
  fc.constantFrom(
    'task,y,x1\nt,1,2\n', 'task,y,x1\nt,1\n', 'task,y,x1\nt,1,2,3\n', 'task,y,x1\nt,NaN,2\n', 'task,y,x1\nt,1,Infinity\n',
    'task,y,x1\n"t,1,2\n', 'task,task,x1\n', 'label,x1\n1.5,2\n', 'label,x1\n-1,2\n', 'label,x1,split\n1,2,holdout\n',
    '{"task":"a","y":1,"x":[1]}\n{"task":"a","y":NaN,"x":[1]}', '{"label":1,"x":[1]}\n{"x":[1]}', '{"task":"a","y":1,"x":[1],"extra":1}',
    'task,y,x1\n' + 't,1,' + '9'.repeat(70_000) + '\n', 'task,y,x1\n' + 't,1,2\n'.repeat(500), '\r\n\r\n', '\uFEFFtask,y,x1\nt,1,2',
  ),
  fc.array(fc.array(fc.oneof(fc.double().map(String), fc.string({ maxLength: 6 })), { maxLength: 5 }).map((row) => row.join(',')), { maxLength: 20 }).map((rows) => `task,y,x1\n${rows.join('\n')}`),
);

/** Raw body text that is not (quite) JSON. */
const rawText = fc.oneof(
  fc.constantFrom('{', '}', '{"a":', '[1,2,', 'NaN', '{"x": NaN}', '{"x": Infinity}', '{"a":1}{"b":2}', '\u0000', '"unterminated', '{"__proto__":{"polluted":1}}', '[]', 'null', '0', '""'),
  fc.string({ maxLength: 200 }),
  fc.integer({ min: 1, max: 20_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
);

/** Lone surrogates become U+FFFD (String.prototype.toWellFormed, which Node 20's types lack). */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

function pathValue(context: FuzzContext): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...context.knownIds) },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 3, arbitrary: hostileText.filter((s) => s.length > 0) },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 40 }) },
    { weight: 1, arbitrary: fc.constantFrom('x'.repeat(129), 'x'.repeat(301), 'sine@latest', 'sine@1', 'a%2Fb') },
  );
}

const queryValue = (schema: JsonSchema | undefined, context: FuzzContext) =>
  fc.oneof(
    validValue(schema).map((v) => (Array.isArray(v) ? v.map(String) : typeof v === 'object' ? JSON.stringify(v) : String(v))),
    hostileText,
    hostileNumber.map(String),
    fc.constantFrom(...context.knownIds),
    fc.array(fc.oneof(hostileText, hostileNumber.map(String)), { minLength: 2, maxLength: 5 }),
  );

/** A hostile request for `route`. */
export function requestFor(route: FuzzRoute, context: FuzzContext): fc.Arbitrary<FuzzRequest> {
  const params = route.operation?.parameters ?? [];
  const declaredQuery = params.filter((p) => p.in === 'query');
  const declaredHeaders = params.filter((p) => p.in === 'header');
  const queryKeys = fc.constantFrom(...declaredQuery.map((p) => p.name), 'extra', 'limit', 'cursor', 'x', '__proto__');

  // Mostly encoded as a client would; sometimes raw, so '%zz' and '/' reach the router as they are.
  // A backslash is always encoded: inject() builds the URL with WHATWG URL, which reads '\' as '/',
  // so a raw '/\x' becomes a protocol-relative URL it cannot even send (a harness limit, not the app's).
  const segment = fc.tuple(pathValue(context), fc.nat({ max: 4 })).map(([value, mode]) => {
    const text = wellFormed(value);
    return mode === 0
      ? text.replace(/[^\x21-\x7e]|[?#\\]/g, (c: string) => encodeURIComponent(c))
      : encodeURIComponent(text).replace(/%40/g, '@');
  });
  const path = fc.tuple(...route.pathParams.map(() => segment)).map((values) => {
    let i = 0;
    const url = route.url.replace(/:([A-Za-z0-9_]+)|\*/g, () => values[i++]);
    // '//host...' would be read as a protocol-relative URL by inject() too (see above).
    return url.startsWith('//') ? `/%2F${url.slice(2)}` : url;
  });

  const declaredQueryArb = fc.record(
    Object.fromEntries(declaredQuery.map((p) => [p.name, queryValue(p.schema, context)])),
    { requiredKeys: [] },
  );
  const query = fc.tuple(declaredQueryArb, fc.array(fc.tuple(queryKeys, queryValue(undefined, context)), { maxLength: 3 })).map(([declared, extra]) => {
    const search = new URLSearchParams();
    for (const [key, value] of [...Object.entries(declared), ...extra]) {
      for (const v of Array.isArray(value) ? value : [value]) search.append(key, String(v));
    }
    const text = search.toString();
    return text ? `?${text}` : '';
  });

  const authorization = fc.oneof(
    { weight: 12, arbitrary: fc.constant(context.authorization) },
    { weight: 1, arbitrary: fc.constantFrom('', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Bearer ${context.authorization.slice(7, -3)}abc`, 'Bearer fa_AAAAAAAAAAAA_' + 'A'.repeat(43), `bearer   ${context.authorization.slice(7)}`) },
    { weight: 1, arbitrary: fc.string({ maxLength: 80 }).map((s) => `Bearer ${s}`) },
  );
  const extraHeaders = fc.record({
    'idempotency-key': fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), hostileText.filter((s) => s.length > 0), fc.constant('k'.repeat(300))),
    'last-event-id': fc.oneof(fc.constantFrom('0-0', '1-1', '$', '99999999999999-0', '-1'), hostileText),
    accept: fc.constantFrom('application/json', 'text/event-stream', 'text/html', '*/*', 'application/xml', ''),
    'x-request-id': fc.oneof(fc.uuid(), hostileText),
    ...Object.fromEntries(declaredHeaders.map((p) => [p.name.toLowerCase(), fc.oneof(queryValue(p.schema, context).map(String), hostileText)])),
  }, { requiredKeys: [] });

  const body: fc.Arbitrary<string | undefined> = fc.oneof(
    { weight: route.operation?.body ? 6 : 1, arbitrary: nearValid(route.operation?.body, context).map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 2, arbitrary: hostileJson.map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: rawText },
    { weight: route.operation?.consumes?.includes('text/csv') ? 8 : 1, arbitrary: rowText },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );

  const method = fc.oneof({ weight: 19, arbitrary: fc.constant(route.method) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') });

  // A route that takes rows is sent rows' media types more often than the rest.
  const rowsRoute = route.operation?.consumes?.includes('text/csv') ?? false;
  const contentType = rowsRoute ? fc.oneof(fc.constantFrom('text/csv', 'application/x-ndjson'), contentTypes) : contentTypes;
  return fc.record({ method, path, query, authorization, extraHeaders, contentType, body }).map((r) => {
    const headers: Record<string, string> = {};
    // Node refuses to send control characters or code points above 0xFF in a header, so no client can.
    for (const [name, value] of Object.entries(r.extraHeaders as Record<string, string>)) headers[name] = value.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
    if (r.authorization !== '') headers.authorization = r.authorization.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
    const hasBody = r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD';
    if (hasBody && r.contentType !== '') headers['content-type'] = r.contentType;
    return { method: r.method, url: `${r.path}${r.query}`, headers, ...(hasBody ? { payload: r.body } : {}) };
  });
}
