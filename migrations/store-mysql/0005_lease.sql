-- Coordinators sharing this store: the leader's lease (its fencing token grows with every new
-- leader) and every coordinator's last heartbeat.
CREATE TABLE leader_lease (
    id INT NOT NULL PRIMARY KEY CHECK (id = 1),
    holder VARCHAR(255) NOT NULL,
    address VARCHAR(512) NOT NULL,
    token BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE coordinators (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    address VARCHAR(512) NOT NULL,
    last_seen_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
