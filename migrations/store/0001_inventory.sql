-- The coordinator's own state: one instance, its mode and epoch, and its nodes.
CREATE TABLE instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('uninstalled', 'installing', 'maintenance', 'normal')),
    epoch INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE nodes (
    name TEXT PRIMARY KEY NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('czar', 'worker', 'repl')),
    agent TEXT NOT NULL UNIQUE,
    -- The worker id recorded when the worker was registered; NULL until then.
    registered_id TEXT,
    position INTEGER NOT NULL
);
