-- Every change a leader makes to the store first bumps this counter on the lease row, in the
-- same transaction and only if the row still carries the leader's token: a deposed leader's
-- write then changes nothing, and in Galera it conflicts with the takeover that deposed it.
ALTER TABLE leader_lease ADD COLUMN fenced_writes INTEGER NOT NULL DEFAULT 0;
