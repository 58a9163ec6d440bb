// Types for scripts/prisma-cli.mjs (plain Node so it runs before `npm ci`), for the TypeScript tests.
export declare const ROOT: string;
export declare const SCHEMA: string;
export declare const MIGRATIONS: string;
export declare const GENERATED_CLIENT: string;
export declare const PRISMA6_SCHEMA: string;
export declare const DEFAULT_DATABASE_URL: string;

export interface Migration {
  /** Folder name under prisma/migrations, e.g. `20261129043000_init`. */
  name: string;
  /** sha256 (hex) of migration.sql, as Prisma records it in `_prisma_migrations.checksum`. */
  checksum: string;
}

export declare function clientIsCurrent(): boolean;
export declare function generateClient(options?: { force?: boolean }): boolean;
export declare function writePrisma6Schema(schemaPath?: string, copyPath?: string): string;
export declare function runPrisma6(
  args: string[],
  options?: { databaseUrl?: string },
): { status: number | null; stdout: string; stderr: string };
export declare function listMigrations(): Migration[];
export declare function deployMigrations(databaseUrl: string): void;
export declare function diffMigrationsToSchema(databaseUrl: string, schemaPath?: string): string;
export declare function redact(url: string): string;
