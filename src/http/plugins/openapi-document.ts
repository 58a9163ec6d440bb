/**
 * Tidies the document @fastify/swagger builds from the route schemas, without changing what it
 * describes: unions of single string literals become one `enum`, and the resources that many
 * operations share (Problem, Job, MetaModel, ...) become named components referenced with `$ref`,
 * so readers and generated clients see one `Job` instead of a dozen anonymous copies.
 */
import type { TSchema } from 'typebox';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (value: Json | undefined): value is JsonObject =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/** `anyOf: [{type: string, enum: [a]}, {type: string, enum: [b]}]` -> `{type: string, enum: [a, b]}`. */
function collapseLiterals(node: JsonObject): JsonObject {
  const branches = node.anyOf;
  if (!Array.isArray(branches) || branches.length < 2) return node;
  const literals = branches.map((branch) => {
    if (!isObject(branch)) return undefined;
    const keys = Object.keys(branch).sort().join(',');
    if (keys === 'enum,type' && Array.isArray(branch.enum) && branch.enum.length === 1) return { type: branch.type, value: branch.enum[0] };
    if (keys === 'const,type') return { type: branch.type, value: branch.const };
    return undefined;
  });
  const type = literals[0]?.type;
  if (literals.some((literal) => literal === undefined || literal.type !== type)) return node;
  const { anyOf: _anyOf, ...rest } = node;
  return { type: type as Json, enum: literals.map((literal) => literal!.value), ...rest };
}

/** Rewrites every node bottom-up with `visit`. */
function mapTree(node: Json, visit: (node: JsonObject) => Json): Json {
  if (Array.isArray(node)) return node.map((item) => mapTree(item, visit));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) out[key] = mapTree(value, visit);
  return visit(out);
}

/** Annotations that do not change what a schema accepts: a use may word them differently. */
const ANNOTATIONS = new Set(['description', 'examples', 'example', 'title']);

/** What a schema accepts, as a string: equal signatures mean the same schema. */
function signature(node: Json): string {
  if (Array.isArray(node)) return `[${node.map(signature).join(',')}]`;
  if (!isObject(node)) return JSON.stringify(node);
  const keys = Object.keys(node).filter((key) => !ANNOTATIONS.has(key)).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${signature(node[key])}`).join(',')}}`;
}

/**
 * The JSON a TypeBox schema renders to in the document: @fastify/swagger writes `const` as a one-value
 * `enum` and `patternProperties` (TypeBox's Record) as `additionalProperties`, and literal unions
 * are collapsed as in {@link tidyDocument}.
 */
function render(schema: TSchema): JsonObject {
  const json = JSON.parse(JSON.stringify(schema)) as Json;
  return mapTree(json, (node) => {
    let out = node;
    if ('const' in out && !('enum' in out)) {
      const { const: value, ...rest } = out;
      out = { ...rest, enum: [value] };
    }
    if (isObject(out.patternProperties)) {
      const { patternProperties, ...rest } = out;
      out = { ...rest, additionalProperties: Object.values(patternProperties)[0] ?? {} };
    }
    return collapseLiterals(out);
  }) as JsonObject;
}

/** Only object schemas are worth a name; a bare string or id stays inline. */
const nameable = (node: JsonObject) => node.type === 'object' && isObject(node.properties);

/**
 * Replaces each inline copy of a named schema by `$ref: #/components/schemas/<name>` and adds the
 * components that are used. A copy whose description differs keeps it next to the `$ref`.
 *
 * @throws when two named schemas are the same schema (the document could not tell them apart).
 */
export function hoistComponents(doc: JsonObject, named: Record<string, TSchema>): JsonObject {
  const bySignature = new Map<string, string>();
  for (const [name, schema] of Object.entries(named)) {
    const key = signature(render(schema));
    const clash = bySignature.get(key);
    if (clash) throw new Error(`OpenAPI components ${clash} and ${name} are the same schema`);
    bySignature.set(key, name);
  }
  const components: Record<string, Json> = {};

  const hoist = (node: Json, root: boolean): Json => {
    if (Array.isArray(node)) return node.map((item) => hoist(item, false));
    if (!isObject(node)) return node;
    const name = !root && nameable(node) ? bySignature.get(signature(node)) : undefined;
    if (name === undefined) {
      const out: JsonObject = {};
      for (const [key, value] of Object.entries(node)) out[key] = hoist(value, false);
      return out;
    }
    const own = (named[name] as { description?: string }).description;
    if (!(name in components)) {
      const { description: _description, examples: _examples, example: _example, ...body } = node;
      components[name] = null; // claimed before descending, so a schema never nests itself
      components[name] = hoist({ ...(own ? { description: own } : {}), ...body }, true);
    }
    const ref: JsonObject = { $ref: `#/components/schemas/${name}` };
    if (typeof node.description === 'string' && node.description !== own) ref.description = node.description;
    return ref;
  };

  const paths = dropEchoedDescriptions(hoist(doc.paths, false));
  const existing = isObject(doc.components) ? doc.components : {};
  const schemas = { ...(isObject(existing.schemas) ? existing.schemas : {}), ...sortKeys(components) };
  return { ...doc, paths, components: { ...existing, schemas } };
}

/**
 * A response schema spread from a description (`{ description, ...Job }`) repeats the response's own
 * description next to its `$ref`; say it once.
 */
function dropEchoedDescriptions(paths: Json): Json {
  return mapTree(paths, (node) => {
    if (typeof node.description !== 'string' || !isObject(node.content)) return node;
    for (const media of Object.values(node.content)) {
      if (isObject(media) && isObject(media.schema) && '$ref' in media.schema && media.schema.description === node.description) {
        delete media.schema.description;
      }
    }
    return node;
  });
}

function sortKeys(record: Record<string, Json>): JsonObject {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * A response declared with `content` keeps its schema's `examples` inside the schema, where a named
 * component would lose them: show them on the media type, as @fastify/swagger does for the others.
 */
function liftExamples(paths: Json): Json {
  return mapTree(paths, (node) => {
    if (!isObject(node.schema) || !Array.isArray(node.schema.examples) || 'example' in node || 'examples' in node) return node;
    const { examples, ...schema } = node.schema;
    return examples.length === 1
      ? { ...node, schema, example: examples[0] }
      : { ...node, schema, examples: Object.fromEntries(examples.map((value, i) => [`example${i + 1}`, { value }])) };
  });
}

/** The whole tidy-up: literal unions collapsed, examples on media types, shared schemas named. */
export function tidyDocument(doc: JsonObject, named: Record<string, TSchema>): JsonObject {
  const collapsed = mapTree(doc, collapseLiterals) as JsonObject;
  return hoistComponents({ ...collapsed, paths: liftExamples(collapsed.paths) }, named);
}
