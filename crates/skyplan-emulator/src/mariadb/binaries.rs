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
    /// The server's version as `mariadbd --version` says it ("Ver 10.11.19-MariaDB-…" →
    /// "10.11.19"); None when it does not run or says something else.
    pub fn server_version(&self) -> Option<String> {
        let out = std::process::Command::new(&self.mariadbd)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        parse_version(&String::from_utf8_lossy(&out.stdout))
    }

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

/// "… Ver 10.11.19-MariaDB-0+deb12u1 for …" → "10.11.19".
fn parse_version(text: &str) -> Option<String> {
    let after = text.split("Ver ").nth(1)?;
    let v: String = after
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (v.split('.').count() == 3 && v.split('.').all(|p| !p.is_empty())).then_some(v)
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
    fn the_server_version_is_read_from_its_banner() {
        assert_eq!(
            parse_version("/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)\n"),
            Some("10.11.19".to_string())
        );
        assert_eq!(
            parse_version("mariadbd  Ver 11.4.4-MariaDB for Linux"),
            Some("11.4.4".into())
        );
        assert_eq!(parse_version("something else"), None);
        assert_eq!(parse_version("x Ver 10.11 for"), None);
    }

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
