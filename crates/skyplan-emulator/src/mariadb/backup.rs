//! Physical backups with mariadb-backup, and restoring one into another instance.

use std::path::Path;

use super::config::InstanceConfig;
use super::instance::{run_tool, Instance};
use super::{fsutil, MariadbError};

/// Where a prepared backup stands in its source's binary log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub binlog_file: String,
    pub binlog_position: u64,
    /// The source's `gtid_current_pos` at the backup: where a replica restored from it starts.
    pub gtid_position: String,
    pub size_bytes: u64,
}

/// mariadb-backup 10.x writes `xtrabackup_binlog_info`; 11.x renamed it.
const BINLOG_INFO_FILES: &[&str] = &["xtrabackup_binlog_info", "mariadb_backup_binlog_info"];
const CHECKPOINTS_FILES: &[&str] = &["xtrabackup_checkpoints", "mariadb_backup_checkpoints"];

impl Instance {
    /// Takes a full backup of the running server into `dest` (which must not exist or be
    /// empty) and prepares it, so it can be restored as is.
    pub async fn backup(&self, dest: &Path) -> Result<BackupInfo, MariadbError> {
        if !self.is_running() {
            return Err(MariadbError::Config(format!(
                "cannot back up {}: mariadbd is not running",
                self.layout.dir.display()
            )));
        }
        let fresh = match std::fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(MariadbError::Config(format!(
                        "backup destination {} is not empty",
                        dest.display()
                    )));
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(MariadbError::io("reading", dest, e)),
        };
        let result = self.backup_into(dest).await;
        if result.is_err() {
            // A half-written backup must not be mistaken for one, nor block a retry.
            // `dest` was absent or empty before: put it back that way.
            let _ = std::fs::remove_dir_all(dest);
            if !fresh {
                let _ = std::fs::create_dir(dest);
            }
        }
        result
    }

    async fn backup_into(&self, dest: &Path) -> Result<BackupInfo, MariadbError> {
        let target = format!("--target-dir={}", dest.display());
        let mut backup = tokio::process::Command::new(&self.binaries.backup);
        backup
            .arg(self.layout.defaults_arg())
            .arg("--backup")
            .arg(&target)
            .arg("--user=root")
            .arg(format!("--socket={}", self.layout.socket.display()));
        run_tool(backup, "mariadb-backup --backup").await?;

        let mut prepare = tokio::process::Command::new(&self.binaries.backup);
        prepare
            .arg(self.layout.defaults_arg())
            .arg("--prepare")
            .arg(&target);
        run_tool(prepare, "mariadb-backup --prepare").await?;

        let text = read_first(dest, BINLOG_INFO_FILES)?;
        let mut info = parse_binlog_info(&text).ok_or_else(|| MariadbError::BadBackup {
            dir: dest.to_path_buf(),
            reason: format!("cannot parse binlog info {text:?}"),
        })?;
        info.size_bytes = dir_size(dest)?;
        Ok(info)
    }

    /// Replaces this instance's data with a prepared backup (of any instance), then starts it.
    ///
    /// Afterwards the server holds the source's data AND users (the point of a restore: only
    /// the source's credentials work), while its own identity comes from `cfg_after`: my.cnf
    /// (server_id, GTID domain, port, TLS) and the sky.settings row (outbound IP, replication
    /// CA, this replica's replication user). `cfg_after.admin_*` is not applied.
    pub async fn restore(
        &mut self,
        backup_dir: &Path,
        cfg_after: &InstanceConfig,
    ) -> Result<(), MariadbError> {
        cfg_after.validate()?;
        if cfg_after.dir != self.cfg.dir {
            return Err(MariadbError::Config(format!(
                "restore cannot move an instance ({} -> {})",
                self.cfg.dir.display(),
                cfg_after.dir.display()
            )));
        }
        check_prepared(backup_dir)?;
        self.stop().await?;
        self.cfg = cfg_after.clone();
        let datadir = &self.layout.datadir;
        match std::fs::remove_dir_all(datadir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(MariadbError::io("wiping", datadir, e)),
        }
        fsutil::create_dir_private(datadir)?;
        self.write_my_cnf()?;
        // --copy-back copies into the datadir named by my.cnf and leaves the backup intact.
        // Files end up owned by the user we run as, which is also the user mariadbd runs as
        // (root only with user=root), so no chown is needed.
        let mut copy = tokio::process::Command::new(&self.binaries.backup);
        copy.arg(self.layout.defaults_arg())
            .arg("--copy-back")
            .arg(format!("--target-dir={}", backup_dir.display()));
        run_tool(copy, "mariadb-backup --copy-back").await?;
        self.start().await
    }
}

fn read_first(dir: &Path, names: &[&str]) -> Result<String, MariadbError> {
    for name in names {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => return Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(MariadbError::io("reading", dir.join(name), e)),
        }
    }
    Err(MariadbError::BadBackup {
        dir: dir.to_path_buf(),
        reason: format!("none of {names:?} exists: not a mariadb-backup directory"),
    })
}

/// A restore of an unprepared backup would start on inconsistent InnoDB files.
fn check_prepared(dir: &Path) -> Result<(), MariadbError> {
    let text = read_first(dir, CHECKPOINTS_FILES)?;
    let prepared = text.lines().any(|line| {
        let mut kv = line.splitn(2, '=').map(str::trim);
        kv.next() == Some("backup_type")
            && matches!(kv.next(), Some("full-prepared") | Some("log-applied"))
    });
    if prepared {
        Ok(())
    } else {
        Err(MariadbError::BadBackup {
            dir: dir.to_path_buf(),
            reason: "the backup was not prepared (mariadb-backup --prepare)".into(),
        })
    }
}

/// `<file>\t<position>[\t<gtid>]`; the GTID is absent when the source never logged one.
fn parse_binlog_info(text: &str) -> Option<BackupInfo> {
    let line = text.lines().next()?;
    let mut fields = line.split('\t');
    let binlog_file = fields.next()?.trim().to_string();
    let binlog_position = fields.next()?.trim().parse().ok()?;
    let gtid_position = fields.next().unwrap_or("").trim().to_string();
    if binlog_file.is_empty() {
        return None;
    }
    Some(BackupInfo {
        binlog_file,
        binlog_position,
        gtid_position,
        size_bytes: 0,
    })
}

fn dir_size(dir: &Path) -> Result<u64, MariadbError> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| MariadbError::io("reading", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| MariadbError::io("reading", dir, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| MariadbError::io("reading", entry.path(), e))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binlog_info_with_and_without_gtid() {
        let info = parse_binlog_info("mariadb-bin.000002\t1234\t0-1-7,5-5-2\n").unwrap();
        assert_eq!(info.binlog_file, "mariadb-bin.000002");
        assert_eq!(info.binlog_position, 1234);
        assert_eq!(info.gtid_position, "0-1-7,5-5-2");
        let bare = parse_binlog_info("mariadb-bin.000001\t329\n").unwrap();
        assert_eq!(bare.gtid_position, "");
        assert!(parse_binlog_info("garbage").is_none());
    }

    #[test]
    fn unprepared_backups_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("xtrabackup_checkpoints"),
            "backup_type = full-backuped\n",
        )
        .unwrap();
        assert!(check_prepared(dir.path()).is_err());
        std::fs::write(
            dir.path().join("xtrabackup_checkpoints"),
            "backup_type = full-prepared\n",
        )
        .unwrap();
        assert!(check_prepared(dir.path()).is_ok());
    }
}
