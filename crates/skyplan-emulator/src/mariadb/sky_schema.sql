-- The `sky` schema of an emulated SkySQL service: the replication procedures of the SkySQL
-- reference (names, arguments and result columns), backed by real GTID replication.
--
-- Installed by the emulator on every start (idempotent). It can also be piped into the
-- `mariadb` client. Statements end with `$$` on its own line.
--
-- The procedures run as `sky_definer`@`localhost` (a locked account with all privileges) so a
-- service's admin user can configure replication without SUPER of its own, as on SkySQL.
-- Per-service settings live in sky.settings (written by the emulator with sql_log_bin=0, so
-- they are never replicated to or from another service).
DELIMITER $$

CREATE DATABASE IF NOT EXISTS sky
$$

CREATE USER IF NOT EXISTS 'sky_definer'@'localhost' ACCOUNT LOCK
$$

GRANT ALL PRIVILEGES ON *.* TO 'sky_definer'@'localhost'
$$

CREATE TABLE IF NOT EXISTS sky.settings (
  id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  outbound_ip VARCHAR(64) NOT NULL,
  replication_ca VARCHAR(1024) NULL,
  replication_user VARCHAR(128) NOT NULL,
  replication_password VARCHAR(128) NOT NULL
) ENGINE=InnoDB COMMENT='one row (id 1): this service''s identity, owned by the emulator'
$$

-- The GRANT the external primary needs for this replica's replication user.
CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.replication_grants()
SQL SECURITY DEFINER
BEGIN
  IF (SELECT COUNT(*) FROM sky.settings WHERE id = 1) = 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'sky.settings is empty: this service was not set up by the emulator';
  END IF;
  SELECT CONCAT('GRANT REPLICATION SLAVE ON *.* TO ', QUOTE(replication_user), '@',
                QUOTE(outbound_ip), ' IDENTIFIED BY ', QUOTE(replication_password), ';')
         AS Run_this_grant_on_your_external_primary
    FROM sky.settings WHERE id = 1;
END
$$

-- Shared by both change_external_primary procedures: CHANGE MASTER only takes literals, so the
-- statement is built (inputs quoted with QUOTE(), numbers checked) and prepared.
CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.configure_primary(
  host VARCHAR(255), port INT, position_clause TEXT, use_ssl_encryption BOOLEAN)
SQL SECURITY DEFINER
BEGIN
  DECLARE v_user, v_password VARCHAR(128);
  DECLARE v_ca VARCHAR(1024);
  IF host IS NULL OR host = '' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'host must not be empty';
  END IF;
  IF port IS NULL OR port < 1 OR port > 65535 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'port must be between 1 and 65535';
  END IF;
  IF (SELECT COUNT(*) FROM sky.settings WHERE id = 1) = 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'sky.settings is empty: this service was not set up by the emulator';
  END IF;
  SELECT replication_user, replication_password, replication_ca
    INTO v_user, v_password, v_ca FROM sky.settings WHERE id = 1;
  SET @sky_change_master = CONCAT(
    'CHANGE MASTER TO MASTER_HOST=', QUOTE(host),
    ', MASTER_PORT=', port,
    ', MASTER_USER=', QUOTE(v_user),
    ', MASTER_PASSWORD=', QUOTE(v_password),
    ', MASTER_CONNECT_RETRY=10, ', position_clause,
    ', MASTER_SSL=', IF(COALESCE(use_ssl_encryption, FALSE), 1, 0),
    ', MASTER_SSL_CA=', QUOTE(IF(COALESCE(use_ssl_encryption, FALSE), COALESCE(v_ca, ''), '')),
    ', MASTER_SSL_VERIFY_SERVER_CERT=', IF(COALESCE(use_ssl_encryption, FALSE), 1, 0));
  PREPARE sky_stmt FROM @sky_change_master;
  -- The statement holds the replication password: do not leave it in a session variable.
  SET @sky_change_master = NULL;
  EXECUTE sky_stmt;
  DEALLOCATE PREPARE sky_stmt;
END
$$

CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.change_external_primary_gtid(
  host VARCHAR(255), port INT, gtid VARCHAR(60), use_ssl_encryption BOOLEAN)
SQL SECURITY DEFINER
BEGIN
  IF gtid IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'gtid must not be NULL';
  END IF;
  STOP SLAVE;
  SET GLOBAL gtid_slave_pos = gtid;
  CALL sky.configure_primary(host, port, 'MASTER_USE_GTID=slave_pos', use_ssl_encryption);
  CALL sky.replication_grants();
END
$$

CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.change_external_primary(
  host VARCHAR(255), port INT, logfile TEXT, logpos BIGINT UNSIGNED, use_ssl_encryption BOOLEAN)
SQL SECURITY DEFINER
BEGIN
  IF logfile IS NULL OR logfile = '' OR logpos IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'logfile and logpos are required';
  END IF;
  STOP SLAVE;
  CALL sky.configure_primary(host, port,
    CONCAT('MASTER_USE_GTID=no, MASTER_LOG_FILE=', QUOTE(logfile), ', MASTER_LOG_POS=', logpos),
    use_ssl_encryption);
  CALL sky.replication_grants();
END
$$

CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.gtid_status()
SQL SECURITY DEFINER
BEGIN
  SHOW GLOBAL VARIABLES WHERE Variable_name IN
    ('gtid_binlog_pos', 'gtid_binlog_state', 'gtid_current_pos', 'gtid_slave_pos');
END
$$

-- Starts replication, then waits up to 5 s for the IO thread to connect and the SQL thread to
-- run, so a caller learns at once when the primary is unreachable or refuses the user.
-- Threads that are up but not connected (an IO thread between connect retries) are restarted,
-- so a fixed grant or allowlist takes effect now rather than at the next retry.
CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.start_replication()
SQL SECURITY DEFINER
BEGIN
  DECLARE v_running VARCHAR(8) DEFAULT 'OFF';
  DECLARE v_waited INT DEFAULT 0;
  SELECT VARIABLE_VALUE INTO v_running FROM information_schema.GLOBAL_STATUS
    WHERE VARIABLE_NAME = 'SLAVE_RUNNING';
  IF v_running <> 'ON' THEN
    STOP SLAVE;
    START SLAVE;
  END IF;
  wait_loop: LOOP
    SELECT VARIABLE_VALUE INTO v_running FROM information_schema.GLOBAL_STATUS
      WHERE VARIABLE_NAME = 'SLAVE_RUNNING';
    IF v_running = 'ON' OR v_waited >= 50 THEN
      LEAVE wait_loop;
    END IF;
    DO SLEEP(0.1);
    SET v_waited = v_waited + 1;
  END LOOP;
  IF v_running = 'ON' THEN
    SELECT 'External replication running normally.' AS Message;
  ELSE
    SELECT 'External replication is not running: the primary is unreachable, refused the replication user, or the SQL thread stopped; see CALL sky.replication_status() (Last_IO_Error, Last_SQL_Error).' AS Message;
  END IF;
END
$$

CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.stop_replication()
SQL SECURITY DEFINER
BEGIN
  STOP SLAVE;
  SELECT 'Replication is down or disabled' AS Message;
END
$$

CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.reset_replication()
SQL SECURITY DEFINER
BEGIN
  STOP SLAVE;
  RESET SLAVE ALL;
  SELECT 'Replica has been reset' AS Message;
END
$$

-- Ends a client session (SkySQL's reference: kill_session(IN thread BIGINT)). Replication
-- threads and the emulator's own accounts are refused.
CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.kill_session(IN thread BIGINT)
SQL SECURITY DEFINER
BEGIN
  DECLARE v_user VARCHAR(128) DEFAULT NULL;
  DECLARE v_command VARCHAR(64) DEFAULT NULL;
  SELECT USER, COMMAND INTO v_user, v_command FROM information_schema.PROCESSLIST
    WHERE ID = thread;
  IF v_user IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no such session';
  END IF;
  IF v_user IN ('system user', 'event_scheduler', 'sky_definer') OR v_command LIKE 'Binlog Dump%' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'not a client session';
  END IF;
  KILL CONNECTION thread;
END
$$

-- Same columns as SHOW SLAVE STATUS (no rows when replication was never configured).
CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.replication_status()
SQL SECURITY DEFINER
BEGIN
  SHOW SLAVE STATUS;
END
$$

CREATE OR REPLACE DEFINER='sky_definer'@'localhost' PROCEDURE sky.skip_repl_error()
SQL SECURITY DEFINER
BEGIN
  STOP SLAVE;
  SET GLOBAL sql_slave_skip_counter = 1;
  START SLAVE;
  SELECT 'Skipped one replicated transaction; replication restarted.' AS Message;
END
$$

DELIMITER ;
