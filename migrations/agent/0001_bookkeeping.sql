-- The agent's bookkeeping beside each Qserv database: where a migration is, whether a module's
-- database is dirty, and every script applied. `IF NOT EXISTS` adopts the tables that agents
-- before this migration created on their own.
CREATE TABLE IF NOT EXISTS schema_state (
    module VARCHAR(16) NOT NULL PRIMARY KEY,
    dirty BOOLEAN NOT NULL DEFAULT FALSE,
    script VARCHAR(255) NULL COMMENT 'script in progress',
    statement INT NULL COMMENT 'statement in progress, 1-based',
    error TEXT NULL,
    job_id VARCHAR(64) NULL,
    repaired_by VARCHAR(255) NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS applied_scripts (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    module VARCHAR(16) NOT NULL,
    file_name VARCHAR(255) NOT NULL,
    checksum CHAR(64) NOT NULL,
    from_version BIGINT NULL,
    to_version BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    job_id VARCHAR(64) NOT NULL,
    requested_by VARCHAR(255) NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY (module, file_name)
) ENGINE = InnoDB;

-- Every repair an operator made: who, when, why, and what the database was marked with.
CREATE TABLE IF NOT EXISTS repairs (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    module VARCHAR(16) NOT NULL,
    version BIGINT NOT NULL,
    forced BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    previous_error TEXT NULL,
    job_id VARCHAR(64) NOT NULL,
    repaired_by VARCHAR(255) NOT NULL,
    repaired_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY (module)
) ENGINE = InnoDB;
