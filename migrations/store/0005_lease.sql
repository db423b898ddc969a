-- Coordinators sharing this store: the leader's lease (its fencing token grows with every new
-- leader) and every coordinator's last heartbeat.
CREATE TABLE leader_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    address TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);

CREATE TABLE coordinators (
    id TEXT PRIMARY KEY NOT NULL,
    address TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
