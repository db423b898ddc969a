-- A term belongs to one coordinator process: a restarted coordinator with the same id is another
-- claimant and takes a new token. Each coordinator also says which migration set it plans with,
-- so that coordinators sharing the store can tell when they disagree.
ALTER TABLE leader_lease ADD COLUMN incarnation VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE coordinators ADD COLUMN incarnation VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE coordinators ADD COLUMN migrations VARCHAR(64) NOT NULL DEFAULT '';
