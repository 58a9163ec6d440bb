// Types for scripts/setup-plan.mjs (plain Node, imported by scripts/setup.mjs before `npm ci`), for the TypeScript tests.
export declare const LOCAL_HOSTS: Set<string>;
export declare const SERVICE_HOW: string;
export declare const SERVICE_PACKAGES: { postgres: string; redis: string };

export type TestTool = 'docker-compose' | 'chromium' | 'torch';
export declare const TEST_TOOLS: Record<TestTool, { what: string; aptPackage: string; neededBy: string }>;
export declare function installRoute(tool: TestTool): string;

export interface AptFacts {
  root: boolean;
  aptGet: boolean;
}
export declare function aptRefusal(facts: AptFacts): string | undefined;
export declare function planTool(tool: TestTool, facts: AptFacts & { present: boolean }): { install?: string; missing?: string };

export interface Cluster {
  version: string;
  name: string;
  port: number;
  online: boolean;
}
export declare const clusterId: (cluster: Pick<Cluster, 'version' | 'name'>) => string;
export declare function parseClusters(text: string): Cluster[];

export interface ServiceFacts extends AptFacts {
  service: 'postgres' | 'redis';
  host: string;
  port: number;
  user?: string;
  answering: boolean;
  installed: boolean;
  serverVersions?: string[];
  clusters?: Cluster[];
  createdBySetup?: string[];
}
export type SetupStep =
  | { kind: 'install'; packages: string[] }
  | { kind: 'create-cluster'; version: string; name: string; port: number }
  | { kind: 'trust-local'; version: string; name: string; user: string }
  | { kind: 'start-cluster'; version: string; name: string }
  | { kind: 'reload-cluster'; version: string; name: string }
  | { kind: 'start-redis'; port: number };
export declare function planService(facts: ServiceFacts): { steps: SetupStep[]; fail?: undefined } | { fail: string; steps?: undefined };

export declare const TRUST_MARKER: string;
export declare function withLocalTrust(hba: string, user: string): string;
