/**
 * POST /task-families, GET /task-families, GET /task-families/:id, and uploads: PUT
 * /task-families/:id/parts/:n, POST /task-families/:id/commit, DELETE /task-families/:id.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { Type } from 'typebox';
import {
  commitUpload,
  CommitRefusedError,
  createTaskFamily,
  createUploadFamily,
  DatasetTooLargeError,
  deleteUncommittedFamily,
  FamilyNotUploadingError,
  getTaskFamily,
  listTaskFamilies,
  writeUploadPart,
} from '../../db/repositories/task-families.js';
import { checkInputShape, createFamily, FamilySpecError, type FamilySpec } from '../../meta/index.js';
import { HttpProblem } from '../problem.js';
import { IdParams, invalidField, LocationHeader, problemResponses, withCursor } from '../schemas/common.js';
import { PART_MEDIA_TYPES, PartBody, PartParams, PartResult, TaskFamily, TaskFamilyCreate, TaskFamilyList, TaskFamilyListQuery } from '../schemas/task-families.js';
import { parsePart, RowError, TooManyRowsError, type UploadFormat } from '../upload-rows.js';

const tags = ['task-families'];

/** A part's body is larger than MAX_PART_BYTES. */
class PartTooLargeError extends Error {}

/**
 * The body as it arrives, counted: past `maxBytes` the read fails (nothing has been stored yet).
 * Stopping early leaves the stream open, so a refusal can still be answered (see discardRest).
 */
async function* limited(body: Readable, maxBytes: number): AsyncGenerator<Uint8Array> {
  let bytes = 0;
  for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    if (bytes > maxBytes) throw new PartTooLargeError();
    yield chunk;
  }
}

/**
 * Reads and drops what is left of a refused part (at most `maxBytes` more), so the client, still
 * sending, gets the answer instead of a reset connection; a body past that is cut off.
 */
async function discardRest(body: Readable, maxBytes: number): Promise<void> {
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    if (bytes > maxBytes) break;
  }
}

/** A body of an unexpected media type, or of a family in the wrong state: mapped to its answer. */
function uploadProblem(error: unknown, part?: number): never {
  if (error instanceof FamilyNotUploadingError) throw new HttpProblem(409, error.message);
  if (error instanceof DatasetTooLargeError) throw new HttpProblem(413, error.message);
  if (error instanceof TooManyRowsError) throw new HttpProblem(413, error.message);
  if (error instanceof RowError && part !== undefined) {
    const where = `part ${part}, line ${error.line}${error.column === null ? '' : `, column ${error.column}`}`;
    throw new HttpProblem(400, `Invalid rows: ${where}: ${error.detail}; nothing of part ${part} was stored`, {
      errors: [{ path: `/parts/${part}/lines/${error.line}${error.column === null ? '' : `/${error.column.replace(/~/g, '~0').replace(/\//g, '~1')}`}`, message: error.detail, in: 'body' }],
      extensions: { part, line: error.line, ...(error.column === null ? {} : { column: error.column }) },
    });
  }
  throw error;
}

/** The engine decides what a valid family is; its field paths become the problem's `errors`. */
function validate(spec: FamilySpec): void {
  try {
    createFamily(spec);
  } catch (error) {
    if (error instanceof FamilySpecError) throw invalidField(error.path, error.detail);
    throw error;
  }
}

const taskFamilies: FastifyPluginAsyncTypebox = async (app) => {
  const { limits } = app.config;
  // A part's body goes to its route as the raw stream, parsed there as it arrives. The parser only
  // hands it over (the body itself is the empty string, which the schema accepts).
  const partStreams = new WeakMap<FastifyRequest, Readable>();
  app.addContentTypeParser([...PART_MEDIA_TYPES], (request, payload, done) => {
    partStreams.set(request, payload as Readable);
    done(null, '');
  });
  /** Most rows one family may hold: MAX_DATASET_ROWS, or fewer where MAX_DATASET_BYTES binds first. */
  const maxRowsFor = (inputDim: number) => Math.min(limits.maxDatasetRows, Math.floor(limits.maxDatasetBytes / ((inputDim + 1) * 4)));

  app.post('/task-families', {
    schema: {
      operationId: 'createTaskFamily',
      summary: 'Define a task family from a built-in generator or uploaded dataset tasks',
      tags,
      body: TaskFamilyCreate(app.config.limits),
      response: { 201: { description: 'Created; Location names it', headers: LocationHeader, ...TaskFamily }, ...problemResponses(400, 413, 415) },
    },
  }, async (request, reply) => {
    const { source, ...spec } = request.body as FamilySpec & { source?: 'upload' };
    if (source === 'upload') {
      if (spec.generator !== undefined || spec.tasks !== undefined) throw invalidField(spec.generator ? '/generator' : '/tasks', "must be absent for source 'upload' (rows come in parts)");
      if (spec.kind === 'classification' && spec.nWay === undefined) throw invalidField('/nWay', 'is required for classification families');
      if (spec.kind === 'regression' && spec.nWay !== undefined) throw invalidField('/nWay', 'applies only to classification families');
      // Checked now, not at commit: the shape says how the rows still to come are read.
      if (spec.inputShape !== undefined) {
        try {
          checkInputShape(spec.inputShape, spec.inputDim);
        } catch (error) {
          if (error instanceof FamilySpecError) throw invalidField(error.path, error.detail);
          throw error;
        }
      }
    } else {
      validate(spec);
    }
    const family = source === 'upload'
      ? await createUploadFamily(app.db, request.tenant.id, spec)
      : await createTaskFamily(app.db, request.tenant.id, spec);
    return reply.code(201).header('location', `/task-families/${family.id}`).send(family);
  });

  app.put('/task-families/:id/parts/:n', {
    schema: {
      operationId: 'uploadTaskFamilyPart',
      summary: 'Upload (or replace) part n of an uploading family: CSV or NDJSON rows, streamed',
      description: `Parsed as it arrives, up to MAX_PART_BYTES (default ${64} MiB) a part; stored in one transaction, so a bad row stores nothing of the part. Uploading part n again replaces it.`,
      tags,
      params: PartParams,
      consumes: [...PART_MEDIA_TYPES],
      body: PartBody,
      response: { 200: PartResult, ...problemResponses(400, 404, 409, 413, 415) },
    },
    // A body of another media type is not a malformed string (what the body schema would call it):
    // it is answered 415 in the handler, once the path parameters have been checked.
    preValidation: async (request) => {
      if (!partStreams.has(request)) request.body = '';
    },
  }, async (request) => {
    const { id, n } = request.params;
    const stream = partStreams.get(request);
    if (!stream) throw new HttpProblem(415, `A part is ${PART_MEDIA_TYPES.join(' or ')}, with the header row first for CSV`);
    const declared = Number(request.headers['content-length']);
    if (declared > limits.maxPartBytes) throw new HttpProblem(413, `A part is at most MAX_PART_BYTES (${limits.maxPartBytes}) bytes`);
    const family = await getTaskFamily(app.db, request.tenant.id, id);
    if (!family || family.source !== 'upload') throw new HttpProblem(404, `No uploaded task family ${id}`);
    if (family.status !== 'uploading') uploadProblem(new FamilyNotUploadingError(family.status));
    const format: UploadFormat = request.headers['content-type']?.toLowerCase().startsWith('text/csv') ? 'csv' : 'ndjson';
    let parsed;
    try {
      parsed = await parsePart(limited(stream, limits.maxPartBytes), { kind: family.kind, inputDim: family.inputDim, format, maxRows: maxRowsFor(family.inputDim) });
    } catch (error) {
      if (error instanceof PartTooLargeError) throw new HttpProblem(413, `A part is at most MAX_PART_BYTES (${limits.maxPartBytes}) bytes; split the file into more parts`);
      await discardRest(stream, limits.maxPartBytes).catch(() => {});
      uploadProblem(error, n);
    }
    let stored;
    try {
      stored = await writeUploadPart(app.db, request.tenant.id, id, n, parsed.chunks, { maxRows: limits.maxDatasetRows, maxBytes: limits.maxDatasetBytes });
    } catch (error) {
      uploadProblem(error, n);
    }
    if (!stored) throw new HttpProblem(404, `No uploaded task family ${id}`);
    return { part: n, rows: parsed.rows, family: stored };
  });

  app.post('/task-families/:id/commit', {
    schema: {
      operationId: 'commitTaskFamily',
      summary: 'Validate an uploaded family as a whole, fix its splits and make it ready',
      description: 'Splits are the rows\' `split` column, or a seeded 70/15/15 by task (by class for a class pool, so classes are disjoint across splits). A refused commit says why and changes nothing: the family stays uploading, so the parts at fault can be sent again (or the family deleted) and the commit repeated.',
      tags,
      params: IdParams,
      response: { 200: TaskFamily, ...problemResponses(400, 404, 409) },
    },
  }, async (request) => {
    let family;
    try {
      family = await commitUpload(app.db, request.tenant.id, request.params.id);
    } catch (error) {
      if (error instanceof CommitRefusedError) throw new HttpProblem(400, `The upload cannot be committed: ${error.message}; nothing changed: replace the parts at fault and commit again`);
      uploadProblem(error);
    }
    if (!family) throw new HttpProblem(404, `No uploaded task family ${request.params.id}`);
    return family;
  });

  app.delete('/task-families/:id', {
    schema: {
      operationId: 'deleteTaskFamily',
      summary: 'Delete an uploaded family that was never committed',
      tags,
      params: IdParams,
      response: { 204: Type.Null({ description: 'Deleted, with its rows' }), ...problemResponses(404, 409) },
    },
  }, async (request, reply) => {
    const outcome = await deleteUncommittedFamily(app.db, request.tenant.id, request.params.id);
    if (outcome === 'missing') throw new HttpProblem(404, `No task family ${request.params.id}`);
    if (outcome === 'ready') throw new HttpProblem(409, 'A ready family stays: meta-training jobs and meta-models name it');
    return reply.code(204).send(null);
  });

  app.get('/task-families', {
    schema: {
      operationId: 'listTaskFamilies',
      summary: 'List task families, newest first',
      tags,
      querystring: TaskFamilyListQuery,
      response: { 200: TaskFamilyList, ...problemResponses(400) },
    },
  }, async (request) => withCursor(() => listTaskFamilies(app.db, request.tenant.id, { limit: request.query.limit ?? 20, cursor: request.query.cursor })));

  app.get('/task-families/:id', {
    schema: {
      operationId: 'getTaskFamily',
      summary: 'Get one task family',
      tags,
      params: IdParams,
      response: { 200: TaskFamily, ...problemResponses(404) },
    },
  }, async (request) => {
    const family = await getTaskFamily(app.db, request.tenant.id, request.params.id);
    if (!family) throw new HttpProblem(404, `No task family ${request.params.id}`);
    return family;
  });
};

export default taskFamilies;
