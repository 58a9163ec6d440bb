/**
 * Ids and times the OpenAPI examples share, so one example's `familyIds` names the family another
 * example shows. They look like the real ones (UUIDv7, ISO-8601 UTC) but name nothing.
 */
export const EXAMPLE_IDS = {
  family: '0197a4f0-1b2c-7d3e-8f40-5a6b7c8d9e01',
  job: '0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70',
  metaModel: '0197a4f3-0d9e-7f21-a3b4-c5d6e7f80912',
} as const;

/** Creation, start and end of the example job. */
export const EXAMPLE_TIMES = {
  created: '2026-01-01T12:00:00.000Z',
  started: '2026-01-01T12:00:00.140Z',
  finished: '2026-01-01T12:00:22.480Z',
} as const;
