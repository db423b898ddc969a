-- Errors, reasons and names are UTF-8 text of any character (a server's message quoting a
-- script, an operator's reason): the tables were made in the server's default character set,
-- often latin1, where recording such an error failed and the dirty flag with it.
ALTER DATABASE qserv_agent CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE schema_state CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE applied_scripts CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
ALTER TABLE repairs CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
