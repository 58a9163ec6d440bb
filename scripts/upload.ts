/**
 * `npm run upload -- --name NAME --kind regression|classification [--n-way N] [--input-shape HxWxC] FILE.csv|FILE.ndjson`:
 * uploads a dataset family to a running fastadapt service, streaming the file in parts with a
 * progress bar (rows, MiB/s, ETA), retrying a failed part, then committing; prints the family id on
 * stdout (everything else goes to stderr, so `ID=$(npm run -s upload -- ...)` captures it).
 *
 *   --url URL        the service (default $FASTADAPT_URL or http://localhost:3000)
 *   --key KEY        an API key (default $FASTADAPT_API_KEY; `npm run apikey -- create --tenant NAME`)
 *   --n-way N        classification: classes per episode (default 5)
 *   --input-shape S  rows are images, e.g. 28x28x1 (height x width x channels, flattened row-major),
 *                    so a conv body (model.body 'conv') can take its inputShape from the family
 *   --part-mib M     part size in MiB (default 16; at most the server's MAX_PART_BYTES)
 *   --format F       csv|ndjson (default: from the file's extension)
 *
 * Exit status: 0 done, 1 refused by the service (the message names part, line and column), 2 usage.
 */
import { createReadStream, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createFastadaptClient, ProblemError, uploadFamily, type UploadFormat, type UploadProgress } from '../clients/typescript/src/index.js';

const USAGE = 'usage: npm run upload -- --name NAME --kind regression|classification [--n-way N] [--input-shape HxWxC] [--url URL] [--key KEY] [--part-mib M] [--format csv|ndjson] FILE';

function usage(message: string): never {
  process.stderr.write(`upload: ${message}\n${USAGE}\n`);
  process.exit(2);
}

/** One line of progress: a bar over the file's bytes, rows accepted, throughput and time left. */
function progressLine(progress: UploadProgress, totalBytes: number, seconds: number): string {
  const fraction = totalBytes > 0 ? Math.min(1, progress.bytes / totalBytes) : 1;
  const width = 24;
  const filled = Math.round(fraction * width);
  const mibPerSecond = progress.bytes / 1048576 / Math.max(seconds, 1e-3);
  const eta = fraction > 0 ? (seconds / fraction) * (1 - fraction) : NaN;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${progress.rows.toLocaleString('en-US')} rows  ${mibPerSecond.toFixed(1)} MiB/s  ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)}s` : '?'}  (part ${progress.parts})`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      kind: { type: 'string' },
      'n-way': { type: 'string' },
      'input-shape': { type: 'string' },
      url: { type: 'string' },
      key: { type: 'string' },
      'part-mib': { type: 'string' },
      format: { type: 'string' },
    },
  });
  const file = positionals[0];
  if (positionals.length !== 1 || !file) usage('give exactly one FILE');
  if (!values.name) usage('--name is required');
  if (values.kind !== 'regression' && values.kind !== 'classification') usage('--kind must be regression or classification');
  const key = values.key ?? process.env.FASTADAPT_API_KEY;
  if (!key) usage('an API key is required: --key KEY or FASTADAPT_API_KEY');
  const format = (values.format ?? (/\.(nd)?jsonl?$/i.test(file) ? 'ndjson' : 'csv')) as UploadFormat;
  if (format !== 'csv' && format !== 'ndjson') usage('--format must be csv or ndjson');
  const partMiB = Number(values['part-mib'] ?? 16);
  if (!(partMiB > 0)) usage('--part-mib must be a positive number');
  const nWay = values.kind === 'classification' ? Number(values['n-way'] ?? 5) : undefined;
  if (nWay !== undefined && !Number.isInteger(nWay)) usage('--n-way must be an integer');
  // The service checks the shape against the rows' inputDim; here only its form.
  const inputShape = values['input-shape']?.split('x').map(Number);
  if (inputShape && (inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d >= 1))) usage('--input-shape must be HxWxC, e.g. 28x28x1');
  let totalBytes: number;
  try {
    totalBytes = statSync(file).size;
  } catch {
    usage(`cannot read ${file}`);
  }

  const api = createFastadaptClient({ baseUrl: values.url ?? process.env.FASTADAPT_URL ?? 'http://localhost:3000', apiKey: key });
  const started = performance.now();
  const tty = process.stderr.isTTY;
  const show = (progress: UploadProgress) => {
    const line = progressLine(progress, totalBytes, (performance.now() - started) / 1000);
    process.stderr.write(tty ? `\r${line}` : `${line}\n`);
  };
  try {
    const family = await uploadFamily(api, createReadStream(file), {
      name: values.name,
      kind: values.kind,
      format,
      nWay,
      ...(inputShape ? { inputShape: inputShape as [number, number, number] } : {}),
      partBytes: Math.floor(partMiB * 1048576),
      onProgress: show,
      onRetry: (part, attempt, error) => process.stderr.write(`${tty ? '\n' : ''}part ${part}: attempt ${attempt} failed (${(error as Error).message}); retrying\n`),
    });
    const seconds = (performance.now() - started) / 1000;
    process.stderr.write(`${tty ? '\n' : ''}committed ${family.rowCount.toLocaleString('en-US')} rows (${family.taskCount} ${values.kind === 'classification' ? 'tasks or classes' : 'tasks'}) in ${seconds.toFixed(1)} s: family ${family.id} is ${family.status}\n`);
    process.stdout.write(`${family.id}\n`);
  } catch (error) {
    process.stderr.write(`${tty ? '\n' : ''}upload: ${error instanceof ProblemError ? error.message : (error as Error).message}\n`);
    process.exit(1);
  }
}

await main();
