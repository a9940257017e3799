//! Processes, mounts and cgroups seen through /proc and /sys, for teardown and for tests
//! that check teardown. Signals and unmounts go through the `kill` and `umount` commands
//! because the crate forbids unsafe code.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A live process: pid and its argv.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub args: Vec<String>,
}

/// Every process that is not a zombie, with its command line.
pub fn processes() -> Vec<Process> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_alive(pid))
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args = raw
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some(Process { pid, args })
        })
        .collect()
}

/// Processes whose argv holds `flag` immediately followed by `value`, e.g. a shim's
/// `-address <socket>`.
pub fn processes_with_arg(flag: &str, value: &str) -> Vec<Process> {
    processes()
        .into_iter()
        .filter(|p| p.args.windows(2).any(|w| w[0] == flag && w[1] == value))
        .collect()
}

/// Processes with `needle` anywhere in their command line.
pub fn processes_mentioning(needle: &str) -> Vec<Process> {
    processes()
        .into_iter()
        .filter(|p| p.args.iter().any(|a| a.contains(needle)))
        .collect()
}

/// Makes a FIFO at `path` (`mkfifo`); a blocking open of it waits for a writer forever.
pub fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// True while the pid exists and is not a zombie (a zombie holds no mounts or cgroup).
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// `"<pid> <start time>"`: names a process uniquely, even after its pid is reused.
pub fn process_identity(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted from the state letter after the parenthesised name (field 3).
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(22 - 3)?;
    is_alive(pid).then(|| format!("{pid} {start}"))
}

/// SIGKILLs the pids (errors ignored: they may be gone already) and waits up to `wait`
/// for them to die.
pub fn kill_and_wait(pids: &[u32], wait: Duration) {
    let own = std::process::id();
    let pids: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| p != own && p > 1)
        .collect();
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + wait;
    while pids.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|mp| mp.starts_with(dir))
        .collect();
    found.sort_by_key(|mp| std::cmp::Reverse(mp.components().count()));
    found.dedup();
    found
}

/// Lazily unmounts everything at or below `dir`, deepest first, until nothing is left.
pub fn unmount_all_under(dir: &Path) {
    // A lazy unmount of a parent also detaches what is stacked on it, so re-read each round.
    for _ in 0..10 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for mp in mounts {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&mp)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(Ok(v)) = bytes
                .get(i + 1..i + 4)
                .and_then(|o| std::str::from_utf8(o).ok())
                .map(|o| u8::from_str_radix(o, 8))
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directories of cgroup `name` (e.g. `/crimg-e2e-x`) in every mounted hierarchy:
/// v1 has one per controller, v2 one in total.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let rel = name.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let mut roots = vec![root.to_path_buf()];
    if let Ok(entries) = fs::read_dir(root) {
        roots.extend(entries.flatten().map(|e| e.path()));
    }
    roots
        .into_iter()
        .map(|r| r.join(rel))
        .filter(|d| d.join("cgroup.procs").is_file())
        .collect()
}

/// Kills every process in cgroup `name` and below, then removes the cgroup directories
/// bottom-up. Errors are ignored: this runs in teardown.
pub fn remove_cgroup(name: &str) {
    let dirs = cgroup_dirs(name);
    if dirs.is_empty() {
        return;
    }
    let mut all = Vec::new();
    for d in &dirs {
        collect_dirs(d, &mut all);
    }
    let pids: Vec<u32> = all
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    kill_and_wait(&pids, Duration::from_secs(5));
    all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    all.dedup();
    for d in all {
        // rmdir of a cgroup fails with EBUSY until its last task has been released.
        let deadline = Instant::now() + Duration::from_secs(2);
        while fs::remove_dir(&d).is_err() && d.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Waits up to `limit` for `child` to exit. On timeout it kills the child and returns
/// `None`, so the caller can fail with what it knows.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) until `cond` holds, polling every 20 ms; false if it never did.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
