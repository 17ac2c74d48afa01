//! What the numbers were measured on: CPU, cores, RAM, OS, the mariadbd the emulator runs.

use std::process::Command;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub os: String,
    pub mariadbd: String,
}

impl Machine {
    /// Read from /proc and the binaries; anything unreadable shows as "unknown".
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let ram_kib: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores,
            ram_gib: ram_kib / 1024.0 / 1024.0,
            os: os_name(),
            mariadbd: mariadbd_version(),
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "{} | {} cores | {:.1} GiB RAM | {} | {}",
            self.cpu, self.cores, self.ram_gib, self.os, self.mariadbd
        )
    }
}

/// The value of the first `key: value` line of a /proc file.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
}

fn os_name() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{pretty}, Linux {}", kernel.trim())
}

fn mariadbd_version() -> String {
    let bin = skyplan_emulator::mariadb::Binaries::locate()
        .map(|b| b.mariadbd)
        .unwrap_or_else(|_| "mariadbd".into());
    Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            // "/usr/sbin/mariadbd  Ver 10.11.6-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 …"
            s.split_whitespace()
                .skip_while(|w| *w != "Ver")
                .nth(1)
                .map(|v| format!("mariadbd {v}"))
        })
        .unwrap_or_else(|| "mariadbd not found".into())
}
