/**
 * `npm run bench:digits-upload -- [--iterations 500]`: the "bring your own data" claim of docs/data.md,
 * checked. Writes the digits as a labelled CSV (scripts/digits-csv.ts), uploads it into a family
 * through the same code the API runs (parse a part, store it, commit, load it for sampling), then
 * meta-trains ProtoNets 5-way 1-shot with bench:meta's digits settings, same seed, on the uploaded
 * family and on the built-in `digits` family, and scores each on 100 test episodes of its own test
 * split (the same 8 classes: the CSV's split column is the built-in split). Writes
 * bench/results/digits-upload.json.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/client.js';
import { createApiKey } from '../src/db/repositories/api-keys.js';
import { commitUpload, createUploadFamily, loadFamilySpec, writeUploadPart } from '../src/db/repositories/task-families.js';
import { parsePart } from '../src/http/upload-rows.js';
import { initBackend, type BackendPreference } from '../src/meta/backend.js';
import { digits, packEpisodes } from '../src/meta/families/index.js';
import { createFamily, MetaLearner, metaTrain, Rng, type TaskFamily, type TrainEvent } from '../src/meta/index.js';
import { DIGITS, learnerConfig, round } from './meta-timing.js';

const { values: opts } = parseArgs({
  options: {
    iterations: { type: 'string', default: '500' },
    shots: { type: 'string', default: '1' },
    backend: { type: 'string', default: 'wasm' },
    out: { type: 'string', default: 'bench/results/digits-upload.json' },
  },
});

async function score(family: TaskFamily, iterations: number, shots: number) {
  const { hidden, metaBatchSize, queryShots, innerSteps, innerLr, metaLr, ways } = DIGITS;
  let params;
  let valAccuracy: number | undefined;
  const started = performance.now();
  for await (const event of metaTrain({
    algorithm: 'protonet',
    model: { hidden, activation: 'relu' },
    families: family,
    hyper: { iterations, metaBatchSize, shots, queryShots, ways, innerSteps, innerLr, metaLr, evalEvery: Math.max(1, Math.floor(iterations / 4)), checkpointEvery: iterations, seed: 0 },
  }) as AsyncGenerator<TrainEvent>) {
    if (event.type === 'result') ({ params, valAccuracy } = { params: event.model.params, valAccuracy: event.valAccuracy });
  }
  const trainSeconds = (performance.now() - started) / 1000;
  const rng = new Rng(777 + shots);
  const test = packEpisodes(Array.from({ length: DIGITS.testEpisodes }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: DIGITS.testQueryShots, ways })));
  const config = learnerConfig('protonet', family, hidden, innerSteps, innerLr, metaLr);
  const learner = new MetaLearner({ ...config, inner: { ...config.inner, steps: DIGITS.testSteps } }, params!);
  try {
    const { accuracy } = learner.evaluate(test);
    return { accuracy: round(accuracy!, 4), valAccuracy: valAccuracy === undefined ? undefined : round(valAccuracy, 4), trainSeconds: round(trainSeconds, 1) };
  } finally {
    learner.dispose();
  }
}

async function main(): Promise<void> {
  const iterations = Number(opts.iterations);
  const shots = Number(opts.shots);
  await initBackend(opts.backend as BackendPreference);
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' }, []);
  const dir = join(tmpdir(), `fastadapt-digits-upload-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'digits.csv');
  const db = createDb(config.databaseUrl);
  let tenantId: string | undefined;
  try {
    const written = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/digits-csv.ts', file], { stdio: 'inherit' });
    if (written.status !== 0) throw new Error('scripts/digits-csv.ts failed');
    tenantId = (await createApiKey(db, `bench-digits-upload-${process.pid}`)).tenantId;
    const created = await createUploadFamily(db, tenantId, { name: 'digits-csv', kind: 'classification', inputDim: 196, nWay: DIGITS.ways });
    const part = await parsePart(createReadStream(file), { kind: 'classification', inputDim: 196, format: 'csv', maxRows: 1_000_000 });
    await writeUploadPart(db, tenantId, created.id, 1, part.chunks, { maxRows: 1_000_000, maxBytes: 2 ** 30 });
    const committed = await commitUpload(db, tenantId, created.id);
    console.log(`uploaded ${committed!.rowCount} rows in ${committed!.taskCount} classes`);
    const uploaded = createFamily((await loadFamilySpec(db, tenantId, created.id))!);
    const builtIn = digits({}, { ways: DIGITS.ways });

    const results = {
      setting: { algorithm: 'protonet', ways: DIGITS.ways, shots, iterations, hidden: DIGITS.hidden, metaBatchSize: DIGITS.metaBatchSize, testEpisodes: DIGITS.testEpisodes, testQueryShots: DIGITS.testQueryShots, seed: 0, backend: opts.backend },
      uploaded: await score(uploaded, iterations, shots),
      builtIn: await score(builtIn, iterations, shots),
      note: 'same train/val/test classes (the CSV carries the built-in split); the built-in family also keeps look-alike classes (e.g. 6 and an upside-down 9) out of one training episode, which an uploaded pool cannot know',
      at: new Date().toISOString(),
    };
    console.log(`test accuracy, ProtoNets ${DIGITS.ways}-way ${shots}-shot after ${iterations} iterations: uploaded ${(100 * results.uploaded.accuracy).toFixed(1)}%, built-in ${(100 * results.builtIn.accuracy).toFixed(1)}%`);
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`wrote ${opts.out}`);
  } finally {
    if (tenantId) await db.prisma.tenant.delete({ where: { id: tenantId } }).catch(() => {});
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
