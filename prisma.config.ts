// Config for the Prisma 7 CLI, which only generates the client here (scripts/setup.mjs runs it with
// PRISMA_SCHEMA_ENGINE_BINARY=/bin/true so it does not try to download a native engine it never uses).
// Migrations are applied with the Prisma 6 CLI: see prisma6.config.ts.
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/fastadapt' },
});
