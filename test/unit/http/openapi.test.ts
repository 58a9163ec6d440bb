/** The OpenAPI plugin's pure parts: what the onRoute hook fills in, and how the document is tidied. */
import type { RouteOptions } from 'fastify';
import { Type } from 'typebox';
import { describe, expect, it } from 'vitest';
import { completeOperation, type OperationSchema } from '../../../src/http/plugins/openapi-operation.js';
import { hoistComponents, tidyDocument } from '../../../src/http/plugins/openapi-document.js';
import { problemResponses } from '../../../src/http/schemas/common.js';

function complete(url: string, schema: OperationSchema): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  completeOperation({ method: 'POST', url, schema } as unknown as RouteOptions);
  return schema.response!;
}

const statuses = (response: Record<string, unknown>) => Object.keys(response).map(Number).sort((a, b) => a - b);

describe('completeOperation', () => {
  it('gives a route behind a tenant key every answer its shape implies, each with an example', () => {
    const response = complete('/things/:id', {
      params: { properties: { id: {} } },
      body: { required: ['name'], properties: { name: {} } },
      response: { 201: { description: 'Created' } },
    });
    expect(statuses(response)).toEqual([201, 400, 401, 413, 415, 429, 500, 503]);
    const bad = response[400].content['application/problem+json'].example;
    expect(bad).toEqual({
      type: 'about:blank', title: 'Bad Request', status: 400, instance: '/things/0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70',
      detail: 'Invalid request: /name is required', errors: [{ path: '/name', message: 'is required', in: 'body' }],
    });
    expect(response[429].headers['retry-after']).toBeDefined();
    expect(response[503].content['application/problem+json'].example).toMatchObject({ status: 503, dependency: 'postgres' });
  });

  it('gives a probe only 500, and a route with its own key 401 but no tenant rate limit or key lookup', () => {
    expect(statuses(complete('/healthz', { security: [], response: { 200: {} } }))).toEqual([200, 500]);
    expect(statuses(complete('/metrics', { security: [{ operatorKey: [] }], response: { 200: {} } }))).toEqual([200, 401, 500]);
  });

  it('keeps what the route declared and never mutates a shared entry', () => {
    const shared = problemResponses(404);
    const own = { description: 'Gone', content: { 'application/problem+json': { schema: {}, example: { status: 404, title: 'Mine' } } } };
    const first = complete('/a/:id', { params: { properties: { id: {} } }, response: { 200: {}, ...shared, 409: own } });
    complete('/b/:id', { params: { properties: { id: {} } }, response: { 200: {}, ...shared } });
    expect(first[409]).toBe(own);
    expect(first[404].content['application/problem+json'].example.instance).toBe('/a/0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70');
    expect(shared[404].content['application/problem+json']).not.toHaveProperty('example');
    expect(first[200].description).toBe('OK');
  });
});

const Item = Type.Object({ id: Type.String(), kind: Type.Union([Type.Literal('a'), Type.Literal('b')]) }, { description: 'An item' });
const ItemList = Type.Object({ items: Type.Array(Item) });

/** Item as @fastify/swagger writes it: `const` as a one-value enum. */
const itemInDoc = (description?: string) => ({
  type: 'object',
  required: ['id', 'kind'],
  properties: { id: { type: 'string' }, kind: { anyOf: [{ type: 'string', enum: ['a'] }, { type: 'string', enum: ['b'] }] } },
  ...(description ? { description } : {}),
});

type Doc = Parameters<typeof tidyDocument>[0];

const media = (schema: unknown) => ({ content: { 'application/json': { schema } } });

describe('tidyDocument', () => {
  it('names shared schemas, nested ones too, and references them', () => {
    const doc = {
      openapi: '3.1.0',
      paths: {
        '/items': { get: { responses: { 200: media({ type: 'object', required: ['items'], properties: { items: { type: 'array', items: itemInDoc() } } }) } } },
        '/items/{id}': { get: { responses: { 200: media(itemInDoc('An item')), 202: { description: 'Queued', ...media(itemInDoc('Queued')) } } } },
      },
    };
    const tidy = tidyDocument(doc as Doc, { Item, ItemList }) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(tidy.paths['/items'].get.responses[200].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ItemList' });
    expect(tidy.components.schemas.ItemList.properties.items.items).toEqual({ $ref: '#/components/schemas/Item' });
    expect(tidy.components.schemas.Item).toEqual({
      description: 'An item',
      type: 'object',
      required: ['id', 'kind'],
      properties: { id: { type: 'string' }, kind: { type: 'string', enum: ['a', 'b'] } },
    });
    expect(tidy.paths['/items/{id}'].get.responses[200].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Item' });
    // The response already says "Queued": not repeated next to the $ref.
    expect(tidy.paths['/items/{id}'].get.responses[202].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Item' });
  });

  it('adds only the components something uses, and leaves a schema that differs inline', () => {
    const other = { type: 'object', properties: { id: { type: 'integer' } } };
    const tidy = tidyDocument({ paths: { '/x': { get: { responses: { 200: media(other) } } } } } as Doc, { Item }) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(tidy.paths['/x'].get.responses[200].content['application/json'].schema).toEqual(other);
    expect(tidy.components.schemas).toEqual({});
  });

  it('refuses two names for one schema', () => {
    expect(() => hoistComponents({ paths: {} }, { Item, Copy: Type.Object({ ...Item.properties }) })).toThrow(/Item and Copy are the same schema/);
  });
});
