//! Finding the MariaDB server binaries on this machine.

use std::path::{Path, PathBuf};

use super::MariadbError;

/// The extra directories searched after PATH: Debian puts `mariadbd` in /usr/sbin, which is not
/// on a normal user's PATH.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/usr/local/sbin"];

/// Absolute paths of the binaries the emulator runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub mariadbd: PathBuf,
    pub install_db: PathBuf,
    /// `mariadb-backup` (formerly `mariabackup`).
    pub backup: PathBuf,
}

impl Binaries {
    /// Finds the binaries on PATH plus the usual sbin directories. Newer names first; the old
    /// `mysqld`/`mysql_install_db`/`mariabackup` names are accepted as fallbacks.
    pub fn locate() -> Result<Binaries, MariadbError> {
        let dirs = search_dirs(std::env::var_os("PATH").as_deref());
        Ok(Binaries {
            mariadbd: find(&dirs, &["mariadbd", "mysqld"])?,
            install_db: find(&dirs, &["mariadb-install-db", "mysql_install_db"])?,
            backup: find(&dirs, &["mariadb-backup", "mariabackup"])?,
        })
    }
}

fn search_dirs(path_var: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = path_var
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    for extra in EXTRA_DIRS {
        let extra = PathBuf::from(extra);
        if !dirs.contains(&extra) {
            dirs.push(extra);
        }
    }
    dirs
}

fn find(dirs: &[PathBuf], names: &[&str]) -> Result<PathBuf, MariadbError> {
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| MariadbError::MissingBinaries {
            binary: names[0].to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_debian_packages() {
        let err = find(&[PathBuf::from("/nonexistent")], &["mariadbd"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`mariadbd`"), "{msg}");
        assert!(
            msg.contains("apt-get install -y mariadb-server mariadb-client mariadb-backup"),
            "{msg}"
        );
    }

    #[test]
    fn sbin_dirs_are_searched_after_path() {
        let dirs = search_dirs(Some(std::ffi::OsStr::new("/opt/bin:/usr/bin")));
        assert_eq!(
            dirs,
            ["/opt/bin", "/usr/bin", "/usr/sbin", "/usr/local/sbin"]
                .map(PathBuf::from)
                .to_vec()
        );
    }
}
