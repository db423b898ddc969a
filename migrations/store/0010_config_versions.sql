-- The versions of each service's configuration template (DESIGN §17): the text as the operator
-- gave it (never a rendered file: rendering, with secrets, happens on the agents), its sha256,
-- who stored it, when and why. Numbered from 1 per service.
CREATE TABLE config_versions (
    service TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content TEXT NOT NULL,
    by_identity TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (service, version)
);
