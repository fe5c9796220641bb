//! Who starts a pool's workers: this process, as its own children (the default), or a
//! cluster's scheduler on other machines ([`Slurm`]). Workers a launcher starts elsewhere dial
//! back over TCP (sealed, with heartbeats: `docs/scale-out.md`) and run tasks exactly as
//! local ones do; shared memory is not reachable from them.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Error, Result};

/// Selects the launcher of every pool that does not name one: `slurm` or `local`.
pub const ENV_LAUNCHER: &str = "OFFSPRING_LAUNCHER";

/// How a pool's workers are started. [`Local`] (the default) and [`Slurm`] implement it; a
/// launcher of another scheduler implements [`Launcher::command`].
///
/// A launcher other than [`Local`] starts each worker as a command whose process stands for
/// the worker in the parent (killed to kill the worker; its exit taken as the worker's). The
/// worker's variables, its one-time secret among them, are in that command's environment,
/// and the launcher must carry them to the worker through its environment, never on a
/// command line (which every user of a node can read).
pub trait Launcher: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// Whether workers run here, as this process's children: then they use local sockets and
    /// shared memory. Only [`Local`] says yes.
    fn is_local(&self) -> bool {
        false
    }

    /// Called once when a pool of `workers` is built, before its first worker starts: for
    /// example to obtain an allocation. May block until it has one.
    ///
    /// # Errors
    ///
    /// Why the pool cannot have workers this way.
    fn prepare(&self, workers: usize) -> Result<()> {
        let _ = workers;
        Ok(())
    }

    /// The command that starts `program` with `args` as one worker.
    ///
    /// # Errors
    ///
    /// Why no worker can be started now.
    fn command(&self, program: &Path, args: &[OsString]) -> std::io::Result<Command>;

    /// What it means that the command's process ended with `status` before the worker
    /// connected.
    fn early_exit_hint(&self, program: &Path, status: ExitStatus) -> String {
        let _ = status;
        format!(
            "the launcher's output above says why; can every node run {}?",
            program.display()
        )
    }
}

/// The default launcher: workers are this process's own children, on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Launcher for Local {
    fn name(&self) -> &str {
        "local"
    }

    fn is_local(&self) -> bool {
        true
    }

    fn command(&self, program: &Path, args: &[OsString]) -> std::io::Result<Command> {
        let mut command = Command::new(program);
        command.args(args);
        Ok(command)
    }
}

/// The launcher a pool gets when it names none: [`Slurm`] under `OFFSPRING_LAUNCHER=slurm`,
/// else [`Local`].
pub(crate) fn from_env() -> Result<Option<Arc<dyn Launcher>>> {
    match std::env::var(ENV_LAUNCHER).ok().as_deref() {
        None | Some("" | "local") => Ok(None),
        Some("slurm") => Ok(Some(Arc::new(Slurm::new()))),
        Some(other) => Err(Error::InvalidConfig {
            reason: format!("{ENV_LAUNCHER}={other:?}: the launchers are `local` and `slurm`"),
        }),
    }
}

/// The coordinator's view of a facade launcher.
#[derive(Debug)]
pub(crate) struct Bridge(pub(crate) Arc<dyn Launcher>);

impl offspring_coordinator::Launch for Bridge {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn command(&self, program: &Path, args: &[OsString]) -> std::io::Result<Command> {
        self.0.command(program, args)
    }

    fn early_exit_hint(&self, program: &Path, status: ExitStatus) -> String {
        self.0.early_exit_hint(program, status)
    }
}

/// Starts pool workers as steps of a Slurm allocation, with `srun`, on whichever nodes Slurm
/// picks.
///
/// The allocation is the caller's when the program already runs inside one (`SLURM_JOB_ID`
/// is set, as in an `sbatch` script or under `salloc`): `partition`, `nodes` and
/// `time_limit` are then the allocation's own, and ignored here. Otherwise the pool obtains
/// one when it is built (`salloc` with these options and one task per worker; `build` waits
/// until Slurm grants it) and gives it back when the last clone of this launcher is gone;
/// if the parent is killed, the allocation ends with it (see `docs/scale-out.md`). Each
/// worker, a replacement too, is one step: `srun --ntasks=1 --exact` plus
/// [`extra_args`](Slurm::extra_args), running the parent's own executable, which every node
/// must see at the same path (a shared filesystem).
#[derive(Debug, Clone, Default)]
pub struct Slurm {
    partition: Option<String>,
    nodes: Option<u32>,
    time_limit: Option<Duration>,
    extra_args: Vec<String>,
    state: Arc<Mutex<Option<Allocation>>>,
}

/// The allocation workers are started in.
#[derive(Debug)]
struct Allocation {
    job_id: String,
    /// The `salloc` this launcher started, when it obtained the allocation itself. Its
    /// command waits for its stdin to close: that is the parent going (or the launcher
    /// dropped), and the allocation ends then.
    owned: Option<Child>,
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if let Some(mut salloc) = self.owned.take() {
            // Cancelling is faster than waiting for the allocation's command to see its
            // stdin close; either ends every step in it. On a thread of its own: the last
            // clone may drop on the coordinator's thread, which must not wait for Slurm.
            let job_id = std::mem::take(&mut self.job_id);
            let _ = std::thread::Builder::new()
                .name("offspring-scancel".into())
                .spawn(move || {
                    let _ = Command::new("scancel")
                        .arg(&job_id)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    drop(salloc.stdin.take());
                    let _ = salloc.wait();
                });
        }
    }
}

impl Slurm {
    /// A launcher with Slurm's defaults (its default partition, one node, its default time
    /// limit) and no extra arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// The partition to allocate in (`--partition`).
    #[must_use]
    pub fn partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = Some(partition.into());
        self
    }

    /// How many nodes to allocate (`--nodes`).
    #[must_use]
    pub fn nodes(mut self, nodes: u32) -> Self {
        self.nodes = Some(nodes);
        self
    }

    /// The allocation's time limit (`--time`, rounded up to whole minutes).
    #[must_use]
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// Arguments passed to every `srun` as given, before the program (for example
    /// `--account=x` or `--mem-per-cpu=2G`).
    #[must_use]
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The job id of the allocation workers start in, once there is one.
    pub fn job_id(&self) -> Option<String> {
        lock(&self.state).as_ref().map(|a| a.job_id.clone())
    }

    /// `salloc` for `workers` tasks, running a command that prints the job id and then
    /// waits for its stdin to close.
    fn allocate(&self, workers: usize) -> Result<Allocation> {
        let fail = |reason: String| Error::Spawn {
            reason: format!("slurm: {reason}"),
        };
        let mut salloc = Command::new("salloc");
        salloc.arg(format!("--ntasks={}", workers.max(1)));
        salloc.arg("--job-name=offspring");
        if let Some(partition) = &self.partition {
            salloc.arg(format!("--partition={partition}"));
        }
        if let Some(nodes) = self.nodes {
            salloc.arg(format!("--nodes={nodes}"));
        }
        if let Some(limit) = self.time_limit {
            salloc.arg(format!("--time={}", limit.as_secs().div_ceil(60).max(1)));
        }
        salloc
            .args([
                "sh",
                "-c",
                "echo \"offspring-job $SLURM_JOB_ID\"; exec cat >/dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = salloc
            .spawn()
            .map_err(|e| fail(format!("cannot run salloc: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("salloc has no stdout".into()))?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let job_id = line
            .trim()
            .strip_prefix("offspring-job ")
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned);
        match (read, job_id) {
            (Ok(_), Some(job_id)) => {
                tracing::info!(target: "offspring", job_id = %job_id, workers, "slurm granted an allocation");
                Ok(Allocation {
                    job_id,
                    owned: Some(child),
                })
            }
            _ => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(fail(format!(
                    "salloc gave no allocation ({}); see its message above",
                    status.map_or_else(|| "no exit status".to_owned(), |s| s.to_string())
                )))
            }
        }
    }
}

impl Launcher for Slurm {
    fn name(&self) -> &str {
        "slurm"
    }

    fn prepare(&self, workers: usize) -> Result<()> {
        let mut state = lock(&self.state);
        if state.is_some() {
            return Ok(());
        }
        *state = Some(match std::env::var("SLURM_JOB_ID") {
            Ok(job_id) if !job_id.is_empty() => Allocation {
                job_id,
                owned: None,
            },
            _ => self.allocate(workers)?,
        });
        Ok(())
    }

    fn command(&self, program: &Path, args: &[OsString]) -> std::io::Result<Command> {
        let job_id = self.job_id().ok_or_else(|| {
            std::io::Error::other("the slurm launcher has no allocation (prepare was not called)")
        })?;
        let mut srun = Command::new("srun");
        srun.arg(format!("--jobid={job_id}"))
            .args([
                "--ntasks=1",
                "--nodes=1",
                "--exact",
                "--kill-on-bad-exit=1",
                "--job-name=offspring-worker",
                "--quiet",
            ])
            .args(&self.extra_args)
            .arg("--")
            .arg(program)
            .args(args);
        // The allocation's own variables would make srun take this step for one of the
        // parent's, or refuse `--jobid`; the worker's variables are added by the caller.
        for var in [
            "SLURM_JOB_ID",
            "SLURM_JOBID",
            "SLURM_STEP_ID",
            "SLURM_STEPID",
        ] {
            srun.env_remove(var);
        }
        Ok(srun)
    }

    fn early_exit_hint(&self, program: &Path, status: ExitStatus) -> String {
        let _ = status;
        format!(
            "srun could not start or keep the worker: see srun's message above. A node without {} (no shared filesystem at that path) cannot run it; the allocation may also have ended",
            program.display()
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
