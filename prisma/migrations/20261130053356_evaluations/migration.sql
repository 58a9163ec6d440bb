-- CreateTable
CREATE TABLE "evaluations" (
    "id" TEXT NOT NULL,
    "tenant_id" TEXT NOT NULL,
    "meta_model_id" TEXT NOT NULL,
    "family_id" TEXT,
    "status" "job_status" NOT NULL DEFAULT 'queued',
    "settings" JSONB NOT NULL,
    "rows" JSONB,
    "multitask_meta_model_id" TEXT,
    "error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "evaluations_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "evaluations_meta_model_id_created_at_id_idx" ON "evaluations"("meta_model_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "evaluations_tenant_id_created_at_id_idx" ON "evaluations"("tenant_id", "created_at", "id");

-- CreateIndex
CREATE INDEX "evaluations_status_updated_at_idx" ON "evaluations"("status", "updated_at");

-- AddForeignKey
ALTER TABLE "evaluations" ADD CONSTRAINT "evaluations_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "evaluations" ADD CONSTRAINT "evaluations_meta_model_id_fkey" FOREIGN KEY ("meta_model_id") REFERENCES "meta_models"("id") ON DELETE CASCADE ON UPDATE CASCADE;
