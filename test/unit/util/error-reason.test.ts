import { describe, expect, it } from 'vitest';
import { errorMessage, firstLine, lastLine, MAX_REASON_LENGTH, truncateReason } from '../../../src/util/error-reason.js';

describe('error reasons', () => {
  it('reads the message of an Error and the text of anything else thrown', () => {
    expect(errorMessage(new RangeError('bad lr'))).toBe('bad lr');
    expect(errorMessage('plain text')).toBe('plain text');
    expect(errorMessage(42)).toBe('42');
  });

  it('picks the first line, or the last non-blank line trimmed (Prisma puts the cause last)', () => {
    const prisma = new Error('\nInvalid `prisma.$queryRaw()` invocation:\n\n\n  Can\'t reach database server at 127.0.0.1:1  \n\n');
    expect(lastLine(prisma)).toBe('Can\'t reach database server at 127.0.0.1:1');
    expect(firstLine(new Error('native binding failed\n    at dlopen (...)'))).toBe('native binding failed');
    expect(lastLine(new Error(' \n '))).toBe('');
  });

  it('cuts a stored reason to MAX_REASON_LENGTH characters with an ellipsis, and leaves a short one alone', () => {
    expect(truncateReason('diverged')).toBe('diverged');
    const exact = 'x'.repeat(MAX_REASON_LENGTH);
    expect(truncateReason(exact)).toBe(exact);
    const cut = truncateReason('y'.repeat(MAX_REASON_LENGTH + 500));
    expect(cut).toHaveLength(MAX_REASON_LENGTH);
    expect(cut.endsWith('…')).toBe(true);
    expect(truncateReason('abcdef', 4)).toBe('abc…');
  });
});
