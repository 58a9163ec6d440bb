-- The inner loop guard (issue 13): an adaptation asks for a policy, a stored head records the
-- support loss at every step, the step it kept and whether the raw loss diverged.

-- CreateEnum
CREATE TYPE "guard_policy" AS ENUM ('best', 'none');

-- AlterTable
ALTER TABLE "adaptations" ADD COLUMN     "guard" "guard_policy" NOT NULL DEFAULT 'best';

-- AlterTable: heads stored before this migration ran unguarded, so they kept their last step, and
-- the raw loss diverged if it ended above where it started, and their trace was not recorded (empty).
ALTER TABLE "adapted_heads" ADD COLUMN     "best_step" INTEGER,
ADD COLUMN     "diverged" BOOLEAN,
ADD COLUMN     "support_loss_trace" DOUBLE PRECISION[];

UPDATE "adapted_heads"
SET "best_step" = "steps",
    "diverged" = "support_loss_after" > "support_loss_before",
    "support_loss_trace" = '{}';

ALTER TABLE "adapted_heads" ALTER COLUMN "best_step" SET NOT NULL,
ALTER COLUMN "diverged" SET NOT NULL;
