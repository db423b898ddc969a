-- The versions of each service's configuration template (DESIGN §17): the text as the operator
-- gave it (never a rendered file: rendering, with secrets, happens on the agents), its sha256,
-- who stored it, when and why. Numbered from 1 per service.
CREATE TABLE config_versions (
    service VARCHAR(64) NOT NULL,
    version BIGINT NOT NULL,
    sha256 CHAR(64) NOT NULL,
    content MEDIUMTEXT NOT NULL,
    by_identity VARCHAR(512) NOT NULL,
    at_ms BIGINT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (service, version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
