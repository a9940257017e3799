//! What one client run costs, for the bundle scenarios: wall time, the client's and
//! containerd's CPU, the machine's other and stolen CPU, and peak memory, from GNU time
//! and /proc.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Node;

/// A process's user + system CPU time so far, its own and that of the children it has
/// waited for (containerd decompresses gzip layers in `unpigz` processes when unpigz is
/// installed), from `/proc/<pid>/stat`.
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 to 17 of stat(5) (utime, stime, cutime, cstime), counted from the state
    // (field 3).
    let ticks: u64 = f[11..15].iter().map(|v| v.parse::<u64>().unwrap()).sum();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

/// What one client run took: wall time, the client's own CPU (user + system, from its
/// rusage as GNU time reports it after wait4), its peak RSS, and containerd's CPU.
pub struct Measured {
    pub wall: Duration,
    pub client_cpu: Duration,
    pub peak_kib: u64,
    pub containerd_cpu: Duration,
    /// Time the hypervisor gave this machine's cores to others during the run (all
    /// cores, `steal` of /proc/stat): on a shared host the floor is that much less
    /// reachable.
    pub steal: Duration,
    /// CPU the machine spent on anything else meanwhile (all cores' busy time less the
    /// client's and containerd's): another process or the kernel taking a core the floor
    /// counts as the import's.
    pub other: Duration,
}

impl Measured {
    /// Everything both processes did, spread over every core: no import can be faster.
    pub fn floor(&self) -> Duration {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        (self.client_cpu + self.containerd_cpu) / cores
    }
}

/// Runs `cmd` under GNU time on `node`, measuring what it and containerd spent.
pub fn measured(node: &Node, cmd: &Command) -> Measured {
    let report = node.dir().join("time.out");
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-o")
        .arg(&report)
        .args(["-f", "%U %S %M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    copy_env(cmd, &mut wrapped);
    let pid = node.containerd_pid().expect("containerd running");
    let before = proc_cpu(pid);
    let cpu_before = machine_cpu();
    let start = Instant::now();
    let out = wrapped.output().expect("run /usr/bin/time");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let containerd_cpu = proc_cpu(pid) - before;
    let cpu_after = machine_cpu();
    let steal = cpu_after.steal.saturating_sub(cpu_before.steal);
    let busy = cpu_after.busy.saturating_sub(cpu_before.busy);
    let text = std::fs::read_to_string(&report).unwrap();
    let f: Vec<f64> = text
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let client_cpu = Duration::from_secs_f64(f[0] + f[1]);
    Measured {
        wall,
        client_cpu,
        peak_kib: f[2] as u64,
        containerd_cpu,
        steal,
        other: busy.saturating_sub(client_cpu + containerd_cpu),
    }
}

/// The machine's CPU time so far, all cores, from /proc/stat's `cpu` line (clock ticks,
/// `getconf CLK_TCK`).
struct MachineCpu {
    /// user, nice, system, irq and softirq.
    busy: Duration,
    /// steal: time the hypervisor gave to others.
    steal: Duration,
}

fn machine_cpu() -> MachineCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu = stat.lines().next().unwrap();
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let time = |t: u64| Duration::from_millis(t * 1000 / clock_ticks());
    MachineCpu {
        busy: time(at(0) + at(1) + at(2) + at(5) + at(6)),
        steal: time(at(7)),
    }
}

/// Clock ticks a second, as /proc counts CPU time.
/// Asked once: a `getconf` run between two samples would count as other CPU.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        String::from_utf8(
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap_or(100)
    })
}

/// `cmd`'s program and arguments, each single-quoted, for a shell script.
pub fn shell_words(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Gives `to` the environment changes `from` makes (set and removed variables).
pub fn copy_env(from: &Command, to: &mut Command) {
    for (k, v) in from.get_envs() {
        match v {
            Some(v) => to.env(k, v),
            None => to.env_remove(k),
        };
    }
}
