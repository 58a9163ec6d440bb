-- Studies (issue 23 item 3): the record of each study (settings, the rung it trains, winner,
-- evaluation, decision) and one row per candidate per rung. A trial is an ordinary job that names its study.
-- (No semicolon or quote in these comments: the schema engine splits the script on semicolons.)
-- AlterTable
ALTER TABLE "meta_train_jobs" ADD COLUMN     "study_id" TEXT;

-- CreateTable
CREATE TABLE "studies" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "status" "job_status" NOT NULL DEFAULT 'running',
    "family_ids" TEXT[],
    "settings" JSONB NOT NULL,
    "rung" INTEGER NOT NULL DEFAULT 0,
    "winner_job_id" TEXT,
    "evaluation_id" TEXT,
    "decision" JSONB,
    "error" TEXT,
    "idempotency_key" TEXT,
    "request_hash" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "studies_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "study_trials" (
    "study_id" TEXT NOT NULL,
    "candidate" INTEGER NOT NULL,
    "rung" INTEGER NOT NULL,
    "job_id" TEXT,
    "outcome" TEXT,
    "validation" JSONB,

    CONSTRAINT "study_trials_pkey" PRIMARY KEY ("study_id","candidate","rung")
);

-- CreateIndex
CREATE INDEX "studies_tenant_id_created_at_id_idx" ON "studies"("tenant_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "studies_status_idx" ON "studies"("status");

-- CreateIndex
CREATE UNIQUE INDEX "studies_tenant_id_idempotency_key_key" ON "studies"("tenant_id", "idempotency_key");

-- CreateIndex
CREATE UNIQUE INDEX "study_trials_job_id_key" ON "study_trials"("job_id");

-- CreateIndex
CREATE INDEX "meta_train_jobs_study_id_idx" ON "meta_train_jobs"("study_id");

-- AddForeignKey
ALTER TABLE "meta_train_jobs" ADD CONSTRAINT "meta_train_jobs_study_id_fkey" FOREIGN KEY ("study_id") REFERENCES "studies"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "studies" ADD CONSTRAINT "studies_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "study_trials" ADD CONSTRAINT "study_trials_study_id_fkey" FOREIGN KEY ("study_id") REFERENCES "studies"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "study_trials" ADD CONSTRAINT "study_trials_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "meta_train_jobs"("id") ON DELETE SET NULL ON UPDATE CASCADE;
