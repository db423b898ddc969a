-- The coordinator's own state on MariaDB (one server or a Galera cluster): one instance, its
-- mode and epoch, and its nodes. Every table has a primary key, as Galera needs.
CREATE TABLE instance (
    id INT NOT NULL PRIMARY KEY CHECK (id = 1),
    name VARCHAR(255) NOT NULL,
    mode VARCHAR(16) NOT NULL CHECK (mode IN ('uninstalled', 'installing', 'maintenance', 'normal')),
    epoch BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE nodes (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    role VARCHAR(16) NOT NULL CHECK (role IN ('czar', 'worker', 'repl')),
    agent VARCHAR(512) NOT NULL UNIQUE,
    registered_id VARCHAR(255),
    position BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
