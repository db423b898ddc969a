-- Retention prunes finished jobs by age and `jobs list --since` reads by creation time.
CREATE INDEX jobs_finished_at ON jobs (finished_at_ms);
CREATE INDEX jobs_created_at ON jobs (created_at_ms);
