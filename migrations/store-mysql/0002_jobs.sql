-- Jobs: every mutating command, persisted before its first step runs.
CREATE TABLE jobs (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    kind VARCHAR(64) NOT NULL,
    params MEDIUMTEXT NOT NULL,
    requested_by VARCHAR(512) NOT NULL,
    state VARCHAR(16) NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    error TEXT NOT NULL DEFAULT '',
    refused BOOLEAN NOT NULL DEFAULT FALSE,
    timed_out BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL DEFAULT 0,
    finished_at_ms BIGINT NOT NULL DEFAULT 0
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE job_steps (
    job_id VARCHAR(64) NOT NULL,
    idx BIGINT NOT NULL,
    name VARCHAR(64) NOT NULL,
    state VARCHAR(16) NOT NULL,
    started_at_ms BIGINT NOT NULL DEFAULT 0,
    finished_at_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx),
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE job_nodes (
    job_id VARCHAR(64) NOT NULL,
    node VARCHAR(255) NOT NULL,
    state VARCHAR(16) NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, node),
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE job_logs (
    job_id VARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    level VARCHAR(16) NOT NULL,
    node VARCHAR(255) NOT NULL DEFAULT '',
    message MEDIUMTEXT NOT NULL,
    PRIMARY KEY (job_id, seq),
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
