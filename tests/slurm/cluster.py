"""A single-node SLURM cluster for tests: munged, slurmctld and slurmd on this machine, as root.

The node is this machine as `slurmd -C` sees it (CPUs, real memory) plus one generic `gpu` resource
backed by /dev/null, so that `--gpus=1` schedules without a GPU. Partitions `cpu` (the default) and
`gpu` carry the names profiles/slurm uses. No accounting database: status comes from `squeue`, and
`MinJobAge` keeps finished jobs in slurmctld's memory for a day. Packages: tools/slurm_install.sh.

The configuration goes to /etc/slurm, where every SLURM command looks first: the plugin's job step
drops `SLURM_*` variables, `SLURM_CONF` included, before its `srun` inside the job.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CONF_DIR = Path("/etc/slurm")
CONF_FILES = (CONF_DIR / "slurm.conf", CONF_DIR / "gres.conf")
WRITTEN_HERE = "# single-node test cluster of molmix's tests/slurm/cluster.py\n"
# Pid files and munge's socket live at a fixed place, so that a later start finds and stops the
# daemons of a run that was killed before it could stop them.
RUN_DIR = Path("/run/molmix-slurm-test")
MUNGE_DIR = RUN_DIR / "munge"  # munged runs as user munge and writes only into a folder of its own
PID_FILES = {
    "slurmd": RUN_DIR / "slurmd.pid",
    "slurmctld": RUN_DIR / "slurmctld.pid",
    "munged": MUNGE_DIR / "munged.pid",
}


def slurm_conf(host: str, node: str, munge_socket: Path, state: Path) -> str:
    """slurm.conf of a one-node cluster whose node line is ``node`` (from `slurmd -C`)."""
    return f"""{WRITTEN_HERE}\
ClusterName=molmix-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state}/slurmctld
SlurmdSpoolDir={state}/slurmd
SlurmctldPidFile={PID_FILES["slurmctld"]}
SlurmdPidFile={PID_FILES["slurmd"]}
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
MinJobAge=86400
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
{node} NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""


class Cluster:
    """A started cluster, queried through SLURM's own commands."""

    def __init__(self, state: Path):
        self.state = state

    def run(self, *command: str) -> str:
        """A SLURM command's stdout; an error names the command and its stderr."""
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
        return result.stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld knows, finished ones included: id, state, name and comment."""
        lines = self.run("squeue", "--states=all", "--noheader", "--format=%i|%T|%j|%k").splitlines()
        fields = ("id", "state", "name", "comment")
        return [dict(zip(fields, line.split("|", 3), strict=True)) for line in lines if line.strip()]

    def show_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as key=value pairs: the request the scheduler granted."""
        items = self.run("scontrol", "--oneliner", "show", "job", job_id).split()
        return dict(item.split("=", 1) for item in items if "=" in item)

    def log_tail(self) -> str:
        """The end of both daemons' logs, for failure messages."""
        return "\n".join(
            f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-20:])
            for name in ("slurmctld.log", "slurmd.log")
            if (path := self.state / name).exists()
        )


def start_cluster(state: Path, timeout: float = 60) -> Cluster:
    """Write the configuration (daemons' state and logs under ``state``), start the daemons and wait
    until the node is idle."""
    if os.geteuid() != 0:
        raise RuntimeError("the test cluster runs its daemons as root: run the SLURM tests as root")
    for tool in ("munged", "slurmctld", "slurmd"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: run tools/slurm_install.sh (as root)")
    stop_cluster()
    for path in CONF_FILES:
        if path.exists():
            raise RuntimeError(f"{path} exists and is not this test's: a SLURM installation to leave alone")
    munge = pwd.getpwnam("munge")
    MUNGE_DIR.mkdir(parents=True, exist_ok=True)
    os.chown(MUNGE_DIR, munge.pw_uid, munge.pw_gid)
    munge_socket = MUNGE_DIR / "munge.socket"
    (state / "slurmctld").mkdir(parents=True)
    (state / "slurmd").mkdir()
    host = socket.gethostname().split(".")[0]
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    CONF_DIR.mkdir(exist_ok=True)
    CONF_FILES[0].write_text(slurm_conf(host, node, munge_socket, state))
    CONF_FILES[1].write_text(f"{WRITTEN_HERE}NodeName={host} Name=gpu File=/dev/null\n")
    # munged refuses a key or socket folder that is not its own user's: run it as `munge`.
    subprocess.run(
        [
            "runuser", "-u", "munge", "--", "munged",
            f"--socket={munge_socket}",
            f"--pid-file={PID_FILES['munged']}",
            f"--log-file={MUNGE_DIR / 'munged.log'}",
            f"--seed-file={MUNGE_DIR / 'munged.seed'}",
        ],
        check=True,
    )  # fmt: skip
    cluster = Cluster(state)
    subprocess.run(["slurmctld", "-c", "-i"], check=True)  # -c -i: no jobs of an earlier cluster
    subprocess.run(["slurmd"], check=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node_states = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%T"], capture_output=True, text=True
        ).stdout.split()
        if node_states and all(node_state == "idle" for node_state in node_states):
            return cluster
        time.sleep(0.5)
    logs = cluster.log_tail()
    stop_cluster()
    raise RuntimeError(f"the SLURM node did not become idle within {timeout} s\n{logs}")


def stop_cluster() -> None:
    """Cancel the jobs, stop the daemons whose pid files are in RUN_DIR and remove the configuration:
    this run's, or what a run killed before it could clean up left behind."""
    if PID_FILES["slurmctld"].exists():
        user = pwd.getpwuid(os.getuid()).pw_name
        subprocess.run(["scancel", f"--user={user}"], capture_output=True)
        for _ in range(100):  # the jobs' processes end before slurmd does
            active = ["squeue", "--noheader", f"--user={user}", "--states=RUNNING,COMPLETING"]
            if not subprocess.run(active, capture_output=True, text=True).stdout.strip():
                break
            time.sleep(0.1)
    for name, pid_file in PID_FILES.items():
        if pid_file.exists():
            _stop(int(pid_file.read_text().split()[0]), name)
            pid_file.unlink(missing_ok=True)
    for path in CONF_FILES:
        if path.exists() and path.read_text().startswith(WRITTEN_HERE):
            path.unlink()


def _stop(pid: int, name: str) -> None:
    """SIGTERM the process ``pid`` if it is still ``name``; SIGKILL it after 10 s."""
    if _command_name(pid) != name:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if _command_name(pid) != name:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _command_name(pid: int) -> str | None:
    """The command name of a live process ``pid`` (None once it has exited, zombies included)."""
    try:
        name, _, rest = Path(f"/proc/{pid}/stat").read_text().partition("(")[2].rpartition(")")
    except OSError:
        return None
    return None if rest.split()[0] in {"Z", "X"} else name
