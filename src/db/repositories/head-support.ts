/**
 * The support set a task's head version was adapted on, for serving's coverage and novelty
 * (src/http/predict-uncertainty.ts): a normalised interval scales with the support targets, novelty
 * is the distance to the support inputs. Read from the adaptation row that stored that version.
 */
import type { Examples } from '../../meta/index.js';
import { float32sFromBytes } from '../../util/float32.js';
import type { Db } from '../client.js';

/** Head `version`'s support set (scoped to the tenant), or null when no stored adaptation produced it. */
export async function loadHeadSupport(db: Db, tenantId: string, taskId: string, version: number): Promise<Examples | null> {
  const row = await db.prisma.adaptation.findFirst({
    where: { tenantId, taskId, headVersion: version, status: 'succeeded' },
    select: { supportSize: true, supportX: true, supportY: true, task: { select: { inputDim: true } } },
  });
  if (!row) return null;
  const x = float32sFromBytes(row.supportX);
  const y = float32sFromBytes(row.supportY);
  // A row whose bytes do not match its sizes cannot be trusted for distances: treat it as absent.
  if (x.length !== row.supportSize * row.task.inputDim || y.length !== row.supportSize) return null;
  return { x, y, n: row.supportSize };
}
