/**
 * Keyset pagination over `(createdAt, id)`, newest first. The cursor is opaque to clients: the
 * position of the last item of the previous page, so pages stay stable while rows are added.
 */

/** A cursor that was not produced by this API (or was edited). */
export class InvalidCursorError extends Error {
  constructor() {
    super('is not a cursor this API produced');
    this.name = 'InvalidCursorError';
  }
}

export interface PageRequest {
  /** Items per page. */
  limit: number;
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

interface Position {
  createdAt: Date;
  id: string;
}

export function encodeCursor(position: Position): string {
  return Buffer.from(`${position.createdAt.toISOString()}|${position.id}`).toString('base64url');
}

/** @throws InvalidCursorError */
export function decodeCursor(cursor: string): Position {
  const [at, id, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (rest.length > 0 || !id || Number.isNaN(createdAt.getTime())) throw new InvalidCursorError();
  return { createdAt, id };
}

/** Prisma `where` and `orderBy` for the page after `cursor` (newest first). */
export function keyset(cursor: string | undefined) {
  const orderBy = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];
  if (cursor === undefined) return { after: {}, orderBy };
  const { createdAt, id } = decodeCursor(cursor);
  return { after: { OR: [{ createdAt: { lt: createdAt } }, { createdAt, id: { lt: id } }] }, orderBy };
}

/** Cuts the `limit + 1` rows a query fetched into a page and the cursor of the next. */
export function toPage<R extends Position, T>(rows: R[], limit: number, view: (row: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  return { items: kept.map(view), nextCursor: more ? encodeCursor(kept[kept.length - 1]) : null };
}
