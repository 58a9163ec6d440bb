// What scripts/setup.mjs decides, apart from doing it: given the facts it gathered about this machine
// (binaries, root, apt-get, Postgres clusters, whether a service answers), which steps it takes. No I/O
// here, so test/unit/setup-plan.test.ts checks every case without touching this machine's packages or
// services, and the tests that need a tool (test/support/requirements.ts) quote the same install route.
// Plain Node with no imports, like setup.mjs.

/** URL hosts that setup may start (and install) a service for: this machine. */
export const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** What a user can do when setup cannot bring a service up. */
export const SERVICE_HOW = 'start it (e.g. `docker compose up -d postgres redis`) or point DATABASE_URL / REDIS_URL at one';

/** The Debian/Ubuntu package that provides each service. */
export const SERVICE_PACKAGES = { postgres: 'postgresql', redis: 'redis-server' };

/**
 * The tools `setup.mjs --test` installs for the tests that need them. Without one, such a test is
 * skipped saying why, or fails under CI (test/support/requirements.ts).
 */
export const TEST_TOOLS = {
  'docker-compose': { what: 'docker-compose', aptPackage: 'docker-compose', neededBy: 'the static docker-compose.yml checks' },
  chromium: { what: 'Chromium (/usr/bin/chromium)', aptPackage: 'chromium', neededBy: 'the dashboard browser test' },
  torch: { what: 'a Python with torch (/usr/bin/python3 or python3)', aptPackage: 'python3-torch', neededBy: 'the PyTorch parity tests and baselines' },
};

/** How a missing test tool gets installed, in one sentence (setup's log and the tests' reasons). */
export function installRoute(tool) {
  const { aptPackage } = TEST_TOOLS[tool];
  return `\`node scripts/setup.mjs --test\` (run by \`npm test\`) installs it with \`apt-get install ${aptPackage}\` when it runs as root where apt-get exists (Debian, Ubuntu); elsewhere install ${aptPackage} (or its equivalent) yourself`;
}

/** Why setup may not install packages here (undefined: it may). Only as root, only with apt-get. */
export function aptRefusal({ root, aptGet }) {
  if (!aptGet) return 'apt-get is not available';
  if (!root) return 'setup is not running as root';
  return undefined;
}

/**
 * --test: what setup does about one test tool. `{ install: package }`, or `{ missing: why }` when it
 * may not install it, or `{}` when the tool is present.
 */
export function planTool(tool, facts) {
  if (facts.present) return {};
  const refusal = aptRefusal(facts);
  if (refusal) return { missing: `${TEST_TOOLS[tool].what} is missing and ${refusal}: ${TEST_TOOLS[tool].neededBy} will be skipped (and fail under CI=true)` };
  return { install: TEST_TOOLS[tool].aptPackage };
}

/** A cluster's name as Debian's tools write it, e.g. `15/main`. */
export const clusterId = (c) => `${c.version}/${c.name}`;

/**
 * `pg_lsclusters --no-header` as facts: one `{ version, name, port, online }` per cluster. Lines it
 * cannot read are left out.
 */
export function parseClusters(text) {
  const clusters = [];
  for (const line of text.split('\n')) {
    const [version, name, port, status] = line.trim().split(/\s+/);
    if (!/^\d+(\.\d+)?$/.test(version ?? '') || !name || !/^\d+$/.test(port ?? '') || !status) continue;
    clusters.push({ version, name, port: Number(port), online: status.split(',')[0] === 'online' });
  }
  return clusters;
}

/** The newest of the installed server versions (majors; 9.x had minors). */
const newest = (versions) => [...versions].sort((a, b) => Number(b) - Number(a))[0];

/**
 * What setup does for a service (`postgres` or `redis`) at the URL's host and port. Returns
 * `{ steps }` (none when it answers and there is nothing to finish) or `{ fail }` with what to do.
 * An `install` step is the only step of its plan: setup installs, gathers the facts again and plans
 * again (what apt created and started is only known afterwards).
 *
 * facts:
 * - service, host, port; user (postgres: the URL's user, default postgres)
 * - answering: the port accepts TCP connections
 * - installed: postgres: a server under /usr/lib/postgresql and postgresql-common's pg_ctlcluster;
 *   redis: redis-server on PATH
 * - root, aptGet
 * - postgres only: serverVersions (installed server majors), clusters (parseClusters), createdBySetup
 *   (ids "15/main" of clusters that appeared during this run, from setup's apt install or its
 *   pg_createcluster)
 */
export function planService(facts) {
  const { service, host, port } = facts;
  const where = `${host}:${port}`;
  const own = service === 'postgres' ? ownCluster(facts) : undefined;
  if (facts.answering && !own) return { steps: [] };
  if (!LOCAL_HOSTS.has(host)) return { fail: `${service} does not answer at ${where}: ${SERVICE_HOW}` };
  if (!facts.installed) {
    const refusal = aptRefusal(facts);
    if (refusal) return { fail: `${service} does not answer at ${where} and is not installed here (setup installs ${SERVICE_PACKAGES[service]} with apt-get only as root; ${refusal}): ${SERVICE_HOW}` };
    return { steps: [{ kind: 'install', packages: [SERVICE_PACKAGES[service]] }] };
  }
  if (service === 'redis') return { steps: [{ kind: 'start-redis', port }] };
  return planPostgres(facts, own, where);
}

/** A cluster on the URL's port that setup created in this run (from its apt install or pg_createcluster). */
function ownCluster({ clusters = [], createdBySetup = [], port }) {
  return clusters.find((c) => c.port === port && createdBySetup.includes(clusterId(c)));
}

function planPostgres(facts, own, where) {
  const { clusters = [], port } = facts;
  const user = facts.user || 'postgres';
  if (own) {
    // Debian creates clusters with peer (socket) and scram-sha-256 (TCP) authentication, and the
    // postgres role has no password: the default DATABASE_URL could not connect. Only on a cluster
    // setup made itself, it lets the URL's user in from this machine without a password.
    const cluster = { version: own.version, name: own.name };
    return { steps: [{ kind: 'trust-local', ...cluster, user }, { kind: own.online ? 'reload-cluster' : 'start-cluster', ...cluster }] };
  }
  const onPort = clusters.find((c) => c.port === port);
  if (onPort) {
    if (onPort.online) return { fail: `postgres cluster ${clusterId(onPort)} is running on port ${port} but does not answer at ${where} (listen_addresses?): ${SERVICE_HOW}` };
    return { steps: [{ kind: 'start-cluster', version: onPort.version, name: onPort.name }] };
  }
  if (clusters.length > 0) {
    const others = clusters.map((c) => `${clusterId(c)} on port ${c.port}`).join(', ');
    return { fail: `postgres does not answer at ${where}; this machine's clusters are elsewhere (${others}): start one on port ${port}, or ${SERVICE_HOW}` };
  }
  if (!facts.root) return { fail: `postgres does not answer at ${where} and there is no cluster (setup creates one only as root): ${SERVICE_HOW}` };
  const version = newest(facts.serverVersions);
  return {
    steps: [
      { kind: 'create-cluster', version, name: 'main', port },
      { kind: 'trust-local', version, name: 'main', user },
      { kind: 'start-cluster', version, name: 'main' },
    ],
  };
}

/** The first line of the block setup adds to pg_hba.conf; its presence means the block is there. */
export const TRUST_MARKER = '# fastadapt scripts/setup.mjs:';

/**
 * pg_hba.conf with setup's trust block on top (the first matching line wins), or unchanged where it
 * is there already. Only the URL's user, only from this machine's loopback addresses.
 */
export function withLocalTrust(hba, user) {
  if (hba.includes(TRUST_MARKER)) return hba;
  if (!/^[A-Za-z_][A-Za-z0-9_$-]*$/.test(user)) throw new Error(`unexpected database user "${user}"`);
  return [
    `${TRUST_MARKER} setup created this cluster and lets ${user} connect over TCP from this machine`,
    '# without a password, as the project\'s default DATABASE_URL (postgresql://postgres@127.0.0.1:5432) does.',
    `host    all    ${user}    127.0.0.1/32    trust`,
    `host    all    ${user}    ::1/128         trust`,
    '',
    hba,
  ].join('\n');
}
