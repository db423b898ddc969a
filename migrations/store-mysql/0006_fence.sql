-- Every change a leader makes to the store first bumps this counter on the lease row, in the
-- same transaction and only if the row still carries the leader's token: a deposed leader's
-- write then changes nothing, and in Galera it conflicts in certification with the takeover
-- that deposed it (a locking read alone would not: Galera certifies written rows only).
ALTER TABLE leader_lease ADD COLUMN fenced_writes BIGINT NOT NULL DEFAULT 0;
