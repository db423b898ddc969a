-- Runs with qservReplica as the default database (created beforehand with its account).
CREATE TABLE IF NOT EXISTS QMetadata (
  metakey CHAR(64) NOT NULL COMMENT 'key, e.g. version',
  value TEXT NULL,
  PRIMARY KEY (metakey)
) ENGINE = InnoDB COMMENT = 'metadata about the database itself';

-- Workers known to the replication system, by the id each worker announces itself with.
CREATE TABLE IF NOT EXISTS config_worker (
  name VARCHAR(255) NOT NULL,
  is_enabled BOOLEAN NOT NULL DEFAULT TRUE,
  is_read_only BOOLEAN NOT NULL DEFAULT FALSE,
  PRIMARY KEY (name)
) ENGINE = InnoDB;
