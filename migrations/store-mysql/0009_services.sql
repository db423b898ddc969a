-- The order in which the instance's services start (DESIGN §15), as the spec declared it: a JSON
-- list of {name, role, after}. Empty for an instance whose spec declares no services.
ALTER TABLE instance ADD COLUMN services MEDIUMTEXT NOT NULL DEFAULT '[]';
