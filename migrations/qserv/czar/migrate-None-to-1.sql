-- Czar metadata database and the version table smig reads. Like Qserv's own None-to-N scripts,
-- this creates the database and records the version it brings the schema to.
CREATE SCHEMA IF NOT EXISTS `qservMeta`;

CREATE TABLE IF NOT EXISTS `qservMeta`.`QMetadata` (
  `metakey` CHAR(64) NOT NULL COMMENT 'key, e.g. version',
  `value` TEXT NULL,
  PRIMARY KEY (`metakey`)
) ENGINE = InnoDB COMMENT = 'metadata about the database itself';

INSERT INTO `qservMeta`.`QMetadata` (`metakey`, `value`) VALUES ('version', '1')
  ON DUPLICATE KEY UPDATE `value` = '1';
