-- Every mutating request: who, in what role, what, with which parameters (no secrets), when,
-- with what result, and the job it created.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    identity TEXT NOT NULL,
    role TEXT NOT NULL,
    operation TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL,
    job_id TEXT NOT NULL DEFAULT ''
);

CREATE INDEX audit_at ON audit (at_ms);
