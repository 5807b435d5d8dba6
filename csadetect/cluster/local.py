"""A real Flink cluster on localhost: Kafka (KRaft), JobManager, TaskManager, Beam's job server and
a Python SDK worker pool, each its own process, on free ports, stopped by PID.

    cluster = LocalCluster(workdir, slots=2).start()     # or: make flink-up
    cluster.pipeline_args(parallelism=2)                  # PortableRunner flags for this cluster
    cluster.kill_taskmanager(); cluster.start_taskmanager()
    cluster.stop()                                        # or: make flink-down

The SDK harness runs without Docker as ``EXTERNAL``: a Beam worker pool
(``apache_beam.runners.worker.worker_pool_main``) that starts one Python SDK worker process per
request of a Flink task. ``LOOPBACK`` would run every worker as a thread of the submitting process
(one GIL: parallelism 2 would not run faster than 1, and the submitter must stay alive), and
``PROCESS`` needs Beam's ``boot`` binary, which only ships in the SDK container image.

Standalone Flink does not restart a dead TaskManager itself: on a real deployment a supervisor
(systemd, Kubernetes) does. :meth:`LocalCluster.start_taskmanager` plays that part here; Flink then
restores the job from its last checkpoint (fixed-delay restart strategy, 1 s apart).

The cluster's ports and PIDs are written to ``<workdir>/cluster.json``, so ``make flink-down`` (or a
test's teardown) stops exactly the processes that ``make flink-up`` started.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

from csadetect.cluster import artifacts

STATE_FILE = "cluster.json"
# what Flink's config.yaml (env.java.opts.all) gives every JVM on Java 17: its Kryo serializers reach
# into these JDK packages
JAVA17_OPENS = tuple(f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in (
    "java.util", "java.lang", "java.lang.reflect", "java.io", "java.nio", "sun.nio.ch", "java.net",
    "java.time", "java.util.concurrent", "java.util.concurrent.atomic", "java.text")) + (
    "--add-opens=java.sql/java.sql=ALL-UNNAMED", "-XX:+IgnoreUnrecognizedVMOptions")


class ClusterError(RuntimeError):
    """A process of the local cluster did not come up (its log's last lines are in the message)."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1. Every socket stays bound until all ``n`` are picked, so the
    system cannot hand one port out twice: picking them one at a time, each socket closed before the
    next, once gave the Python worker pool the JobManager's RPC port (the pool died on "address already
    in use" and the job never started)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_port(port: int, proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"{what} exited with {proc.returncode} before listening on {port}:\n{_tail(log)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise ClusterError(f"{what} is not listening on {port} after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Ports:
    """The cluster's ports; those not given (0) are picked together by :func:`free_ports`, distinct from
    each other and from the given ones."""

    kafka: int = 0
    kafka_controller: int = 0
    jm_rpc: int = 0
    rest: int = 0
    blob: int = 0
    tm_rpc: int = 0
    job: int = 0
    artifact: int = 0
    expansion: int = 0
    jobserver_expansion: int = 0
    worker_pool: int = 0

    def __post_init__(self) -> None:
        names = [f.name for f in fields(self)]
        taken = {getattr(self, name) for name in names} - {0}
        missing = [name for name in names if not getattr(self, name)]
        if not missing:
            return
        picked = [p for p in free_ports(len(missing) + len(taken)) if p not in taken][:len(missing)]
        for name, port in zip(missing, picked):
            setattr(self, name, port)


FLINK_CONF = """\
# written by csadetect.cluster.local: a one-machine standalone Flink session cluster
jobmanager.rpc.address: localhost
jobmanager.bind-host: localhost
jobmanager.rpc.port: {p.jm_rpc}
jobmanager.memory.process.size: 1280m
# every job brings Beam's runner, KafkaIO and gRPC as user code (~190 jars): room for their classes
jobmanager.memory.jvm-metaspace.size: 512m
rest.address: localhost
rest.bind-address: localhost
rest.port: {p.rest}
blob.server.port: {p.blob}
taskmanager.host: localhost
taskmanager.bind-host: localhost
taskmanager.rpc.port: {p.tm_rpc}
taskmanager.numberOfTaskSlots: {slots}
taskmanager.memory.process.size: 2400m
taskmanager.memory.jvm-metaspace.size: 768m
taskmanager.memory.managed.fraction: 0.1
parallelism.default: 1
# a dead TaskManager is noticed within seconds, not the default 50 s
heartbeat.interval: 1000
heartbeat.timeout: 5000
restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: 100
restart-strategy.fixed-delay.delay: 1 s
state.checkpoints.dir: file://{work}/checkpoints
state.savepoints.dir: file://{work}/savepoints
# checkpoints hold in-flight state (open windows, conversation state): gone with the job
execution.checkpointing.externalized-checkpoint-retention: DELETE_ON_CANCELLATION
io.tmp.dirs: {work}/tmp
web.tmpdir: {work}/tmp
"""

KAFKA_CONF = """\
# written by csadetect.cluster.local: one combined broker + controller in KRaft mode (no ZooKeeper)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:{p.kafka_controller}
listeners=PLAINTEXT://localhost:{p.kafka},CONTROLLER://localhost:{p.kafka_controller}
advertised.listeners=PLAINTEXT://localhost:{p.kafka}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={work}/kafka-data
num.partitions=2
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=20971520
"""

LOG4J_FLINK = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{HH:mm:ss,SSS} %-5p %-60c %x - %m%n
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
logger.netty.name = org.apache.flink.shaded.netty4
logger.netty.level = WARN
"""

LOG4J_KAFKA = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


def kafka_cluster_id() -> str:
    """A random Kafka cluster id (a UUID in URL-safe base64, 22 characters) that does not start with
    ``-``: ``kafka-storage format -t ID`` would take such an id for an option and refuse to format (one
    id in 64), as Kafka's own ``Uuid.randomUuid`` avoids for the same reason."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class LocalCluster:
    workdir: Path
    slots: int = 2
    ports: Ports = field(default_factory=Ports)
    pids: dict = field(default_factory=dict)
    timeout: float = 120.0

    def __post_init__(self):
        self.workdir = Path(self.workdir).resolve()
        self._procs: dict = {}

    # -- state -------------------------------------------------------------------------------
    def save(self) -> None:
        state = {"workdir": str(self.workdir), "slots": self.slots, "ports": asdict(self.ports), "pids": self.pids}
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, workdir: Path) -> "LocalCluster":
        state = json.loads((Path(workdir) / STATE_FILE).read_text())
        return cls(Path(state["workdir"]), state["slots"], Ports(**state["ports"]), state["pids"])

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list, env: Optional[dict] = None) -> subprocess.Popen:
        log = self.workdir / "log" / f"{name}.out"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.workdir, env={**os.environ, **(env or {})}, start_new_session=True)
        self._procs[name] = proc
        self.pids[name] = proc.pid
        self.save()
        return proc

    def _resource_params(self, which: str) -> tuple:
        """The JVM flags and ``-D`` settings Flink's start scripts compute for a JobManager or
        TaskManager from the memory settings (``BashJavaUtils``, as ``bin/taskmanager.sh`` does)."""
        home = artifacts.flink_home()
        out = subprocess.run([artifacts.java(), "-cp", f"{home / 'lib'}/*:{home / 'bin' / 'bash-java-utils.jar'}",
                              "org.apache.flink.runtime.util.bash.BashJavaUtils", f"GET_{which}_RESOURCE_PARAMS",
                              "--configDir", str(self.workdir / "conf")], capture_output=True, text=True)
        lines = [ln.split(":", 1)[1] for ln in out.stdout.splitlines() if ln.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")]
        if out.returncode != 0 or len(lines) < 2:
            raise ClusterError(f"Flink's BashJavaUtils could not size the {which}: {out.stdout[-800:]}{out.stderr[-800:]}")
        return tuple(lines[0].split()), tuple(lines[1].split())

    def _flink_java(self, main: str, name: str, which: str) -> list:
        home = artifacts.flink_home()
        conf = self.workdir / "conf"
        jvm, dynamic = self._resource_params(which)
        return [artifacts.java(), *jvm, *JAVA17_OPENS,
                f"-Dlog.file={self.workdir / 'log' / (name + '.log')}",
                f"-Dlog4j.configurationFile=file:{conf / 'log4j.properties'}",
                "-cp", f"{home / 'lib'}/*", main, "--configDir", str(conf), *dynamic]

    def _write_configs(self) -> None:
        for sub in ("conf", "log", "tmp", "checkpoints", "savepoints", "kafka-data"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "conf"
        (conf / "config.yaml").write_text(FLINK_CONF.format(p=self.ports, slots=self.slots, work=self.workdir))
        (conf / "log4j.properties").write_text(LOG4J_FLINK)
        (conf / "kafka.properties").write_text(KAFKA_CONF.format(p=self.ports, work=self.workdir))
        (conf / "log4j-kafka.properties").write_text(LOG4J_KAFKA)

    def start_kafka(self) -> None:
        cp = f"{artifacts.kafka_dir()}/*"
        props = self.workdir / "conf" / "kafka.properties"
        cluster_id = kafka_cluster_id()
        log4j = f"-Dlog4j.configuration=file:{self.workdir / 'conf' / 'log4j-kafka.properties'}"
        fmt = subprocess.run([artifacts.java(), log4j, "-cp", cp, "kafka.tools.StorageTool", "format",
                              "-t", cluster_id, "-c", str(props), "--ignore-formatted"],
                             capture_output=True, text=True)
        if fmt.returncode != 0:
            raise ClusterError(f"formatting Kafka's storage failed: {fmt.stdout[-500:]}{fmt.stderr[-1500:]}")
        proc = self._spawn("kafka", [artifacts.java(), "-Xmx512m", log4j, "-cp", cp, "kafka.Kafka", str(props)])
        _wait_port(self.ports.kafka, proc, self.workdir / "log" / "kafka.out", "Kafka", self.timeout)

    def start_jobmanager(self) -> None:
        proc = self._spawn("jobmanager", self._flink_java(
            "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint", "jobmanager", "JM"))
        _wait_port(self.ports.rest, proc, self.workdir / "log" / "jobmanager.log", "Flink's JobManager", self.timeout)

    def start_taskmanager(self, wait: bool = True) -> None:
        """Start (or, after :meth:`kill_taskmanager`, restart) the TaskManager, and wait until the
        JobManager has registered its slots."""
        proc = self._spawn("taskmanager", self._flink_java(
            "org.apache.flink.runtime.taskexecutor.TaskManagerRunner", "taskmanager", "TM"))
        if wait:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise ClusterError(f"the TaskManager exited with {proc.returncode}:\n"
                                       f"{_tail(self.workdir / 'log' / 'taskmanager.log')}")
                try:
                    if self.rest("/overview").get("slots-total", 0) >= self.slots:
                        return
                except (OSError, ValueError):
                    pass
                time.sleep(0.3)
            raise ClusterError(f"no TaskManager registered with the JobManager within {self.timeout:.0f} s")

    def kill_taskmanager(self) -> int:
        """SIGKILL the TaskManager process (no shutdown hook runs: a crash). Returns its PID."""
        pid = self.pids.get("taskmanager")
        proc = self._procs.get("taskmanager")
        os.kill(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(10)
        return pid

    def start_jobserver(self) -> None:
        cp = f"{artifacts.jobserver_dir()}/*"
        proc = self._spawn("jobserver", [
            artifacts.java(), "-Xmx512m", "-cp", cp, "org.apache.beam.runners.flink.FlinkJobServerDriver",
            f"--flink-master=localhost:{self.ports.rest}", "--flink-conf-dir", str(self.workdir / "conf"),
            f"--job-port={self.ports.job}", f"--artifact-port={self.ports.artifact}",
            f"--expansion-port={self.ports.jobserver_expansion}",
            f"--artifacts-dir={self.workdir / 'artifacts'}"])
        _wait_port(self.ports.job, proc, self.workdir / "log" / "jobserver.out", "Beam's Flink job server", self.timeout)

    def start_expansion_service(self) -> None:
        """Beam's Java expansion service (KafkaIO on its class path) with the Java transforms'
        environment set to ``EMBEDDED``: Flink runs KafkaIO's Java SDK harness inside the TaskManager,
        from the job's staged jars. (The job server's own expansion service would give them a
        ``DOCKER`` environment, which needs a Docker engine on every TaskManager.)"""
        proc = self._spawn("expansion", [
            artifacts.java(), "-Xmx384m", "-cp", f"{artifacts.jobserver_dir()}/*",
            "org.apache.beam.sdk.expansion.service.ExpansionService", str(self.ports.expansion),
            "--defaultEnvironmentType=EMBEDDED"])
        _wait_port(self.ports.expansion, proc, self.workdir / "log" / "expansion.out",
                   "Beam's expansion service", self.timeout)

    def start_worker_pool(self) -> None:
        proc = self._spawn("workerpool", [
            sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={self.ports.worker_pool}"],
            # the pool starts each SDK worker as plain `python`: this interpreter's, with this package
            env={"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])})
        _wait_port(self.ports.worker_pool, proc, self.workdir / "log" / "workerpool.out",
                   "the Python SDK worker pool", self.timeout)

    def start(self, kafka: bool = True) -> "LocalCluster":
        gone = artifacts.missing()
        if gone:
            raise artifacts.MissingArtifact("not fetched (run `make flink-deps`): " + "; ".join(gone))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_configs()
        try:
            if kafka:
                self.start_kafka()
            self.start_jobmanager()
            self.start_taskmanager()
            self.start_jobserver()
            self.start_expansion_service()
            self.start_worker_pool()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every process this cluster started (its whole process group: the worker pool's
        SDK workers too), then SIGKILL what is still alive after 10 s."""
        for name, pid in list(self.pids.items()):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 10
        for name, pid in list(self.pids.items()):
            while time.monotonic() < deadline and _alive(pid, self._procs.get(name)):
                time.sleep(0.1)
            if _alive(pid, self._procs.get(name)):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.pids.pop(name, None)
        if self.workdir.exists():
            self.save()

    # -- use ---------------------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        return f"localhost:{self.ports.kafka}"

    @property
    def rest_url(self) -> str:
        return f"http://localhost:{self.ports.rest}"

    def rest(self, path: str, method: str = "GET", body: Optional[dict] = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.rest_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def live_jobs(self) -> list:
        """The JobManager's jobs that have not ended (``/jobs/overview`` entries)."""
        return [j for j in self.rest("/jobs/overview")["jobs"] if j["state"] not in ("CANCELED", "FAILED", "FINISHED")]

    def cancel_jobs(self) -> None:
        """Cancel every job that has not ended."""
        for job in self.live_jobs():
            self.rest(f"/jobs/{job['jid']}", method="PATCH")

    def running(self) -> dict:
        """Which of the started processes are alive, by name."""
        return {name: pid for name, pid in self.pids.items() if _alive(pid, self._procs.get(name))}

    def describe(self) -> dict:
        return {
            "flink_ui": self.rest_url, "kafka": self.kafka_bootstrap,
            "job_endpoint": f"localhost:{self.ports.job}", "expansion_service": f"localhost:{self.ports.expansion}",
            "worker_pool": f"localhost:{self.ports.worker_pool}", "pids": self.running(),
            "logs": str(self.workdir / "log"), "pipeline_args": self.pipeline_args(),
        }

    def pipeline_args(self, parallelism: int = 1, checkpoint_ms: int = 2000) -> list:
        """PortableRunner flags for a streaming job on this cluster (Beam's Java FlinkPipelineOptions
        ``--parallelism``, ``--checkpointing_interval`` and ``--finish_bundle_before_checkpointing``
        go through to the job server; the last one: docs/deploy.md "Flink", the stalled read)."""
        return [
            "--runner=PortableRunner", f"--job_endpoint=localhost:{self.ports.job}",
            f"--artifact_endpoint=localhost:{self.ports.artifact}",
            "--environment_type=EXTERNAL", f"--environment_config=localhost:{self.ports.worker_pool}",
            f"--expansion_service=localhost:{self.ports.expansion}",
            # one Python SDK worker process per parallel task (Beam's default is one per TaskManager)
            f"--sdk_worker_parallelism={parallelism}",
            f"--parallelism={parallelism}", f"--checkpointing_interval={checkpoint_ms}",
            "--finish_bundle_before_checkpointing",
            "--streaming",
        ]


def _alive(pid: int, proc: Optional[subprocess.Popen]) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of a process we did not start is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
