//! `cargo xtask slurm`: a one-node Slurm cluster for the tests of pool workers started by
//! Slurm (`crates/offspring-tests/tests/slurm.rs`, `docs/scale-out.md`).
//!
//! Debian's Slurm 22.05 runs without systemd: `munged` is started by hand as user `munge`
//! (after creating `/run/munge`), then `slurmctld -f CONF` and `slurmd -f CONF -N <host>`.
//! Everything of the cluster (configuration, state, spool, pid and log files) lives under
//! `<target>/slurm/`. The node declares 8 CPUs whatever the machine has
//! (`SlurmdParameters=config_overrides`): with its real 2, four one-CPU worker steps could
//! not run at once and a 4-worker pool would wait forever; steps keep `--exact` and their
//! own CPU, and merely share the machine's cores.
//!
//! The step stops only the daemons it started. Daemons a previous run left behind (found by
//! the pid files in that directory) are stopped first, and the state is made fresh, so every
//! run starts from an empty queue. A cluster that cannot be started fails the step.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Workspace};

/// Debian's packages of the cluster, and a command each provides.
const PACKAGES: [(&str, &str); 4] = [
    ("slurmctld", "slurmctld"),
    ("slurmd", "slurmd"),
    ("slurm-client", "srun"),
    ("munge", "munged"),
];

/// How long the node may take to come up idle.
const START_LIMIT: Duration = Duration::from_secs(60);

/// CPUs the node declares (see the module docs).
const NODE_CPUS: u32 = 8;

/// A running one-node cluster; stopped by [`Cluster::stop`] (or on drop).
pub(crate) struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    /// Whether `munged` was started here (else it was running already and stays).
    started_munge: bool,
    stopped: bool,
}

impl Cluster {
    /// Installs what is missing, writes the configuration, starts the daemons and waits
    /// until the node is idle.
    pub(crate) fn start(ws: &Workspace) -> Result<Self, String> {
        install_missing()?;
        let dir = ws.target_dir.join("slurm");
        for name in ["slurmd.pid", "slurmctld.pid"] {
            stop_pid_file(&dir.join(name));
        }
        for sub in ["state", "spool"] {
            let path = dir.join(sub);
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("create {}: {e}", path.display()))?;
        }
        let host = output(Command::new("hostname").arg("-s"))?
            .trim()
            .to_owned();
        let memory = real_memory()?;
        let conf = dir.join("slurm.conf");
        std::fs::write(&conf, config(&dir, &host, memory))
            .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let started_munge = start_munge()?;
        let mut cluster = Self {
            dir,
            conf,
            started_munge,
            stopped: false,
        };
        let conf = cluster.conf.clone();
        util::run_checked(Command::new("slurmctld").arg("-f").arg(&conf))?;
        util::run_checked(
            Command::new("slurmd")
                .arg("-f")
                .arg(&conf)
                .args(["-N", &host]),
        )?;
        let began = Instant::now();
        loop {
            let state =
                output(cluster.client("sinfo").args(["-h", "-N", "-o", "%t"])).unwrap_or_default();
            if state.trim() == "idle" {
                println!(
                    "slurm: node {host} idle {} after start ({})",
                    util::format_duration(began.elapsed()),
                    cluster.conf.display()
                );
                return Ok(cluster);
            }
            if began.elapsed() > START_LIMIT {
                let log =
                    std::fs::read_to_string(cluster.dir.join("slurmd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let _ = cluster.stop();
                return Err(format!(
                    "the Slurm node did not come up idle within {START_LIMIT:?} (state {:?}); slurmd.log ends:\n{}",
                    state.trim(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The cluster's `slurm.conf`; clients need it as `SLURM_CONF`.
    pub(crate) fn conf(&self) -> &Path {
        &self.conf
    }

    /// A Slurm client command aimed at this cluster.
    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// Cancels every job, then stops the daemons started here.
    pub(crate) fn stop(&mut self) -> Result<(), String> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let jobs = output(self.client("squeue").args(["-h", "-o", "%i"])).unwrap_or_default();
        let jobs: Vec<&str> = jobs.split_whitespace().collect();
        if !jobs.is_empty() {
            let _ = self
                .client("scancel")
                .args(&jobs)
                .stderr(Stdio::null())
                .status();
            let began = Instant::now();
            while began.elapsed() < Duration::from_secs(15)
                && !output(self.client("squeue").args(["-h", "-o", "%i"]))
                    .unwrap_or_default()
                    .trim()
                    .is_empty()
            {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        stop_pid_file(&self.dir.join("slurmd.pid"));
        stop_pid_file(&self.dir.join("slurmctld.pid"));
        if self.started_munge {
            stop_pid_file(Path::new("/run/munge/munged.pid"));
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Starts the cluster, runs the Slurm tests against it and the quickstart example moved
/// onto it by `OFFSPRING_LAUNCHER=slurm`, and stops it whatever they gave.
pub(crate) fn run(ws: &Workspace) -> Result<(), String> {
    let mut cluster = Cluster::start(ws)?;
    let mut tests = ws.cargo([
        "test",
        "-p",
        "offspring-tests",
        "--test",
        "slurm",
        "--",
        "--test-threads=1",
    ]);
    tests
        .env("SLURM_CONF", cluster.conf())
        .env("OFFSPRING_SLURM", "required");
    let result = util::run_reporting(&mut tests).and_then(|()| quickstart_on_slurm(ws, &cluster));
    let stopped = cluster.stop();
    result.and(stopped)
}

/// The unchanged quickstart example, with `OFFSPRING_LAUNCHER=slurm`: it must succeed, and
/// its pool must have been an allocation of this cluster (slurmctld remembers ended jobs for
/// `MinJobAge`, 300 s by default).
fn quickstart_on_slurm(ws: &Workspace, cluster: &Cluster) -> Result<(), String> {
    util::run_checked(&mut ws.cargo(["build", "--release", "--example", "quickstart"]))?;
    let jobs_before = offspring_jobs(cluster);
    let example = ws
        .target_dir
        .join("release")
        .join("examples")
        .join("quickstart");
    let mut command = Command::new(&example);
    command
        .current_dir(&ws.root)
        .env("SLURM_CONF", cluster.conf())
        .env("OFFSPRING_LAUNCHER", "slurm")
        .env_remove("SLURM_JOB_ID");
    util::run_checked(&mut command)?;
    let new: Vec<String> = offspring_jobs(cluster)
        .into_iter()
        .filter(|job| !jobs_before.contains(job))
        .collect();
    if new.is_empty() {
        return Err("quickstart with OFFSPRING_LAUNCHER=slurm ran, but no Slurm allocation of it is on record".into());
    }
    println!(
        "slurm: quickstart ran its pool in Slurm job(s) {}",
        new.join(", ")
    );
    Ok(())
}

/// Ids of the jobs named `offspring` (the launcher's allocations) slurmctld knows of, ended
/// ones included.
fn offspring_jobs(cluster: &Cluster) -> Vec<String> {
    output(
        cluster
            .client("squeue")
            .args(["-h", "-t", "all", "-n", "offspring", "-o", "%i"]),
    )
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

fn config(dir: &Path, host: &str, memory: u64) -> String {
    let at = |name: &str| dir.join(name).display().to_string();
    format!(
        "# Written by `cargo xtask slurm`: a one-node cluster for offspring's tests.
ClusterName=offspring
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
KillWait=2
InactiveLimit=30
SlurmdParameters=config_overrides
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={ctld_pid}
SlurmdPidFile={d_pid}
SlurmctldLogFile={ctld_log}
SlurmdLogFile={d_log}
NodeName={host} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
",
        state = at("state"),
        spool = at("spool"),
        ctld_pid = at("slurmctld.pid"),
        d_pid = at("slurmd.pid"),
        ctld_log = at("slurmctld.log"),
        d_log = at("slurmd.log"),
    )
}

/// 95% of the memory `slurmd -C` reports, in MiB.
fn real_memory() -> Result<u64, String> {
    let report = output(Command::new("slurmd").arg("-C"))?;
    let total = report
        .split_whitespace()
        .find_map(|field| field.strip_prefix("RealMemory="))
        .and_then(|mib| mib.parse::<u64>().ok())
        .ok_or_else(|| format!("`slurmd -C` reports no RealMemory: {report:?}"))?;
    Ok(total * 95 / 100)
}

fn install_missing() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, tool)| !util::on_path(tool) && !Path::new("/usr/sbin").join(tool).is_file())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("slurm: installing {}", missing.join(", "));
    util::apt_install(&missing)
}

/// Starts `munged` as user `munge` unless one runs; whether it was started here.
fn start_munge() -> Result<bool, String> {
    if running("munged") {
        return Ok(false);
    }
    std::fs::create_dir_all("/run/munge").map_err(|e| format!("create /run/munge: {e}"))?;
    util::run_checked(Command::new("chown").args(["munge:munge", "/run/munge"]))?;
    util::run_checked(Command::new("runuser").args(["-u", "munge", "--", "/usr/sbin/munged"]))?;
    Ok(true)
}

/// Whether a process of that name runs (from `/proc/*/comm`).
fn running(name: &str) -> bool {
    std::fs::read_dir("/proc").is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
    })
}

/// Stops the process a pid file names, if it runs: SIGTERM, then SIGKILL after 10 s.
fn stop_pid_file(path: &Path) {
    let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
    else {
        return;
    };
    // Alive, not a zombie (nothing may reap the daemons here), and the daemon the file is
    // for: a stale file may name a pid reused by another process.
    let daemon = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default()
        .to_owned();
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.split_once(" (")
                .and_then(|(_, rest)| rest.rsplit_once(") "))
                .is_some_and(|(comm, rest)| comm == daemon && !rest.starts_with('Z'))
        })
    };
    if !alive() {
        return;
    }
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let began = Instant::now();
    while alive() && began.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let _ = std::fs::remove_file(path);
}

/// A command's stdout, or why it failed.
fn output(command: &mut Command) -> Result<String, String> {
    let line = util::describe(command);
    let out = command
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`{line}` failed ({})", out.status))
    }
}
