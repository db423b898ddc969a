-- Worker database, its version table and the worker's unique identity.
CREATE DATABASE IF NOT EXISTS qservw_worker;

CREATE TABLE IF NOT EXISTS qservw_worker.QMetadata (
  metakey CHAR(64) NOT NULL COMMENT 'key, e.g. version',
  value TEXT NULL,
  PRIMARY KEY (metakey)
) ENGINE = InnoDB COMMENT = 'metadata about the database itself';

-- The worker announces itself to the replication system under this id; it must survive restarts
-- and never be regenerated for an existing database.
CREATE TABLE IF NOT EXISTS qservw_worker.Id (
  id VARCHAR(64) NOT NULL,
  type ENUM('UUID', 'HOSTNAME', 'CUSTOM') DEFAULT 'UUID',
  created TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  UNIQUE KEY (type)
) ENGINE = InnoDB;

INSERT INTO qservw_worker.Id (id, type)
  SELECT UUID(), 'UUID' FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM qservw_worker.Id);
