-- Every mutating request: who, in what role, what, with which parameters (no secrets), when,
-- with what result, and the job it created.
CREATE TABLE audit (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    identity VARCHAR(512) NOT NULL,
    role VARCHAR(32) NOT NULL,
    operation VARCHAR(64) NOT NULL,
    params MEDIUMTEXT NOT NULL,
    result TEXT NOT NULL,
    job_id VARCHAR(64) NOT NULL DEFAULT '',
    INDEX audit_at (at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
