-- Czar metadata database and the version table smig reads.
CREATE DATABASE IF NOT EXISTS qservMeta;

CREATE TABLE IF NOT EXISTS qservMeta.QMetadata (
  metakey CHAR(64) NOT NULL COMMENT 'key, e.g. version',
  value TEXT NULL,
  PRIMARY KEY (metakey)
) ENGINE = InnoDB COMMENT = 'metadata about the database itself';
