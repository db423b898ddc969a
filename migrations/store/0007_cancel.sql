-- An operator asked a running job to stop. Kept in the job's row, so that whichever leader runs
-- or resumes the job sees it, not only the process that took the request.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
-- What a job that had nothing to do came to ("nothing to do: the instance is already normal"),
-- apart from its error: such a job succeeded.
ALTER TABLE jobs ADD COLUMN note TEXT NOT NULL DEFAULT '';
