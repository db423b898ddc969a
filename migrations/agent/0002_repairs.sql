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
