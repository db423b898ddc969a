-- An operator asked a running job to stop. Kept in the job's row, so that whichever leader runs
-- or resumes the job sees it, not only the process that took the request.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
