-- Tasks that live (issue 24): label names and the readapt policy per task, stored labelled examples
-- (bounded, numbered per task), prequential totals and the last 100 scores, a pinned head version
-- beside the latest, and adaptations that read the stored examples when they run.
-- (No semicolon or quote in these comments: the schema engine splits the script on semicolons.)
-- CreateEnum
CREATE TYPE "readapt_policy" AS ENUM ('manual', 'auto');

-- AlterTable
ALTER TABLE "adaptations" ADD COLUMN     "auto_readapt" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "examples_through" BIGINT,
ADD COLUMN     "from_examples" BOOLEAN NOT NULL DEFAULT false;

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "example_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "example_seq" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "labels" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "live_correct" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "live_recent" DOUBLE PRECISION[] DEFAULT ARRAY[]::DOUBLE PRECISION[],
ADD COLUMN     "live_scored" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "live_squared_error" DOUBLE PRECISION NOT NULL DEFAULT 0,
ADD COLUMN     "pinned_version" INTEGER,
ADD COLUMN     "readapt" "readapt_policy" NOT NULL DEFAULT 'manual',
ADD COLUMN     "readapt_active" BOOLEAN NOT NULL DEFAULT false;

-- CreateTable
CREATE TABLE "task_examples" (
    "task_id" TEXT NOT NULL,
    "seq" BIGINT NOT NULL,
    "x" BYTEA NOT NULL,
    "y" REAL NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "task_examples_pkey" PRIMARY KEY ("task_id","seq")
);

-- AddForeignKey
ALTER TABLE "task_examples" ADD CONSTRAINT "task_examples_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE CASCADE ON UPDATE CASCADE;
