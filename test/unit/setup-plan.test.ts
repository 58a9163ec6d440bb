// What scripts/setup.mjs decides on a machine, from the facts it gathered (scripts/setup-plan.mjs):
// install with apt-get only as root where apt-get exists and only for a local URL, create a Postgres
// cluster only where there is none, let the URL's user in without a password only on a cluster setup
// created. Facts are written out here; nothing on this machine is touched.
import { describe, expect, it } from 'vitest';
import { parseClusters, planService, planTool, TRUST_MARKER, withLocalTrust, type Cluster, type ServiceFacts } from '../../scripts/setup-plan.mjs';

const redis = (facts: Partial<ServiceFacts> = {}): ServiceFacts => ({
  service: 'redis', host: '127.0.0.1', port: 6379, answering: false, installed: true, root: true, aptGet: true, ...facts,
});
const postgres = (facts: Partial<ServiceFacts> = {}): ServiceFacts => ({
  service: 'postgres', host: '127.0.0.1', port: 5432, user: 'postgres', answering: false, installed: true, root: true, aptGet: true,
  serverVersions: ['15'], clusters: [], createdBySetup: [], ...facts,
});
const cluster = (version: string, port: number, online: boolean, name = 'main'): Cluster => ({ version, name, port, online });

describe('setup plan: redis', () => {
  it('does nothing where Redis answers, local or not', () => {
    expect(planService(redis({ answering: true }))).toEqual({ steps: [] });
    expect(planService(redis({ answering: true, host: 'redis.internal', installed: false }))).toEqual({ steps: [] });
  });

  it('starts the installed redis-server on the URL\'s port', () => {
    expect(planService(redis({ port: 6380 }))).toEqual({ steps: [{ kind: 'start-redis', port: 6380 }] });
  });

  it('installs redis-server with apt-get where it is missing, as root with apt-get', () => {
    for (const host of ['127.0.0.1', 'localhost', '::1']) {
      expect(planService(redis({ host, installed: false }))).toEqual({ steps: [{ kind: 'install', packages: ['redis-server'] }] });
    }
  });

  it('only says what to do where it may not install: not root, or no apt-get', () => {
    const notRoot = planService(redis({ installed: false, root: false }));
    expect(notRoot.steps).toBeUndefined();
    expect(notRoot.fail).toMatch(/does not answer at 127\.0\.0\.1:6379 .*not running as root.*docker compose up -d postgres redis/);
    expect(planService(redis({ installed: false, aptGet: false })).fail).toMatch(/apt-get is not available/);
  });

  it('never installs or starts anything for a remote URL', () => {
    const plan = planService(redis({ host: 'redis.internal', installed: false }));
    expect(plan).toEqual({ fail: expect.stringMatching(/^redis does not answer at redis\.internal:6379: start it/) });
    expect(planService(redis({ host: '10.0.0.5' })).fail).toMatch(/point DATABASE_URL \/ REDIS_URL at one/);
  });
});

describe('setup plan: postgres', () => {
  it('does nothing where Postgres answers and setup created no cluster in this run', () => {
    expect(planService(postgres({ answering: true, clusters: [cluster('15', 5432, true)] }))).toEqual({ steps: [] });
    expect(planService(postgres({ answering: true, host: 'db.internal', installed: false, clusters: [] }))).toEqual({ steps: [] });
  });

  it('installs postgresql on a fresh machine, as root with apt-get, and plans again after (apt may create a cluster)', () => {
    expect(planService(postgres({ installed: false, serverVersions: [] }))).toEqual({ steps: [{ kind: 'install', packages: ['postgresql'] }] });
    expect(planService(postgres({ installed: false, root: false })).fail).toMatch(/installs postgresql with apt-get only as root; setup is not running as root/);
    expect(planService(postgres({ installed: false, aptGet: false })).fail).toMatch(/apt-get is not available/);
    expect(planService(postgres({ installed: false, host: 'db.internal' })).fail).toMatch(/^postgres does not answer at db\.internal:5432: start it/);
  });

  it('on the cluster apt created for setup\'s install: lets the URL\'s user in from this machine, then reloads it or starts it', () => {
    const running = planService(postgres({ answering: true, clusters: [cluster('15', 5432, true)], createdBySetup: ['15/main'] }));
    expect(running).toEqual({ steps: [{ kind: 'trust-local', version: '15', name: 'main', user: 'postgres' }, { kind: 'reload-cluster', version: '15', name: 'main' }] });
    const down = planService(postgres({ clusters: [cluster('15', 5432, false)], createdBySetup: ['15/main'] }));
    expect(down).toEqual({ steps: [{ kind: 'trust-local', version: '15', name: 'main', user: 'postgres' }, { kind: 'start-cluster', version: '15', name: 'main' }] });
  });

  it('creates a cluster only where there is none: the newest server, on the URL\'s port, trusted for the URL\'s user, then started', () => {
    const plan = planService(postgres({ port: 5433, user: 'fastadapt', serverVersions: ['13', '15', '9.6'] }));
    expect(plan).toEqual({
      steps: [
        { kind: 'create-cluster', version: '15', name: 'main', port: 5433 },
        { kind: 'trust-local', version: '15', name: 'main', user: 'fastadapt' },
        { kind: 'start-cluster', version: '15', name: 'main' },
      ],
    });
    expect(planService(postgres({ user: '' })).steps).toContainEqual({ kind: 'trust-local', version: '15', name: 'main', user: 'postgres' });
    expect(planService(postgres({ root: false })).fail).toMatch(/there is no cluster \(setup creates one only as root\)/);
  });

  it('starts a cluster it did not create without changing how it authenticates', () => {
    const plan = planService(postgres({ clusters: [cluster('14', 5432, false, 'other'), cluster('15', 5433, false)] }));
    expect(plan).toEqual({ steps: [{ kind: 'start-cluster', version: '14', name: 'other' }] });
    // Also without root: pg_ctlcluster works for the cluster's owner, and says why where it does not.
    expect(planService(postgres({ root: false, clusters: [cluster('15', 5432, false)] }))).toEqual({ steps: [{ kind: 'start-cluster', version: '15', name: 'main' }] });
    // A cluster setup created in an earlier run is no longer its own: a second run leaves its pg_hba.conf alone.
    expect(planService(postgres({ answering: true, clusters: [cluster('15', 5432, true)], createdBySetup: [] }))).toEqual({ steps: [] });
  });

  it('neither creates a second cluster nor starts one on another port than the URL\'s', () => {
    const plan = planService(postgres({ clusters: [cluster('15', 5433, false), cluster('13', 5434, true)] }));
    expect(plan.steps).toBeUndefined();
    expect(plan.fail).toMatch(/clusters are elsewhere \(15\/main on port 5433, 13\/main on port 5434\): start one on port 5432/);
    expect(planService(postgres({ clusters: [cluster('15', 5432, true)] })).fail).toMatch(/15\/main is running on port 5432 but does not answer at 127\.0\.0\.1:5432/);
  });
});

describe('setup plan: pg_lsclusters and pg_hba.conf', () => {
  it('reads each cluster\'s version, name, port and whether it is online', () => {
    const listed = [
      '15  main    5432 online postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log',
      '13  replica 5433 online,recovery postgres /var/lib/postgresql/13/replica /var/log/postgresql/postgresql-13-replica.log',
      '9.6 old     5434 down   postgres /var/lib/postgresql/9.6/old /var/log/postgresql/postgresql-9.6-old.log',
      'Warning: something printed by a wrapper',
      '',
    ].join('\n');
    expect(parseClusters(listed)).toEqual([cluster('15', 5432, true), cluster('13', 5433, true, 'replica'), cluster('9.6', 5434, false, 'old')]);
  });

  it('puts the trust lines above Debian\'s defaults (the first matching line wins), once', () => {
    const debian = [
      'local   all             postgres                                peer',
      'local   all             all                                     peer',
      'host    all             all             127.0.0.1/32            scram-sha-256',
      'host    all             all             ::1/128                 scram-sha-256',
      '',
    ].join('\n');
    const trusted = withLocalTrust(debian, 'postgres');
    const lines = trusted.split('\n').filter((l) => l.startsWith('host'));
    expect(lines.map((l) => l.split(/\s+/))).toEqual([
      ['host', 'all', 'postgres', '127.0.0.1/32', 'trust'],
      ['host', 'all', 'postgres', '::1/128', 'trust'],
      ['host', 'all', 'all', '127.0.0.1/32', 'scram-sha-256'],
      ['host', 'all', 'all', '::1/128', 'scram-sha-256'],
    ]);
    expect(trusted.startsWith(TRUST_MARKER)).toBe(true);
    expect(trusted.endsWith(debian)).toBe(true);
    expect(withLocalTrust(trusted, 'postgres')).toBe(trusted);
    expect(() => withLocalTrust(debian, 'x y')).toThrow(/unexpected database user/);
  });
});

describe('setup plan: tools for the tests (--test)', () => {
  it('installs each missing tool\'s Debian package as root with apt-get, and says who will skip otherwise', () => {
    expect(planTool('chromium', { present: true, root: false, aptGet: false })).toEqual({});
    expect(planTool('chromium', { present: false, root: true, aptGet: true })).toEqual({ install: 'chromium' });
    expect(planTool('torch', { present: false, root: true, aptGet: true })).toEqual({ install: 'python3-torch' });
    expect(planTool('docker-compose', { present: false, root: true, aptGet: true })).toEqual({ install: 'docker-compose' });
    expect(planTool('torch', { present: false, root: false, aptGet: true }).missing).toMatch(/torch.*is missing and setup is not running as root: the PyTorch .* will be skipped \(and fail under CI=true\)/);
    expect(planTool('chromium', { present: false, root: true, aptGet: false }).missing).toMatch(/Chromium .* apt-get is not available: the dashboard browser test will be skipped/);
  });
});
