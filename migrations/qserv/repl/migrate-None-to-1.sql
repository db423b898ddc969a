-- Runs with qservReplica as the default database; the agent creates the database and the
-- replication account first (as Qserv's replication migration manager does).
CREATE TABLE IF NOT EXISTS `QMetadata` (
  `metakey` CHAR(64) NOT NULL COMMENT 'key, e.g. version',
  `value` TEXT NULL,
  PRIMARY KEY (`metakey`)
) ENGINE = InnoDB COMMENT = 'metadata about the database itself';

-- Workers known to the replication system, by the id each worker announces itself with.
CREATE TABLE IF NOT EXISTS `config_worker` (
  `name` VARCHAR(255) NOT NULL,
  `is_enabled` BOOLEAN NOT NULL,
  `is_read_only` BOOLEAN NOT NULL,
  PRIMARY KEY (`name`)
) ENGINE = InnoDB;

INSERT INTO `QMetadata` (`metakey`, `value`) VALUES ('version', '1')
  ON DUPLICATE KEY UPDATE `value` = '1';
