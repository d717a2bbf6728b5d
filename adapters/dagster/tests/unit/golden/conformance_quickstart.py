# A Dagster code location written by conveyor-dagster. Do not edit it: export the pipeline again.
#
# One job, one op per step of a deployment kept in conveyor's metadata store; each op runs
# `python -m conveyor.runtime run-step` in a process or in a container of the pipeline's image.
# Every name, parameter and setting is a Python literal in the tables below, so loading this
# file runs none of them; the code after the tables is the same in every file.
from __future__ import annotations

import codecs
import datetime
import json
import os
import signal
import subprocess
import sys
import threading

import dagster as dg


class Slot:
    """Stands for a value of the run in a command: the run's id, the op's step or image."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class Param(Slot):
    """Stands for a pipeline parameter in a command: its value in the run's config, as JSON."""


RUN_ID, STEP, IMAGE = Slot("run_id"), Slot("step"), Slot("image")

CONVEYOR_PIPELINE = 'quickstart'
CONVEYOR_DEPLOYMENT = '8a9a2b9a7851c24a1b532ca674773596'
JOB_NAME = 'quickstart'
JOB = {
    'description': "conveyor pipeline 'quickstart', deployment 8a9a2b9a7851c24a1b532ca674773596",
    'tags': {'conveyor/deployment': '8a9a2b9a7851c24a1b532ca674773596'},
    'executor': {},
}
# The pipeline's parameters: the defaults of the `conveyor` resource's config, which a run can override.
PARAMETERS = {'n': 20}
# Environment of step processes (python mode) and step containers (docker mode).
PARENT_PID_VARIABLE = 'CONVEYOR_PARENT_PID'
PROCESS_ENV = {'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db', 'CONVEYOR_SOURCE_ROOT': '/srv/code'}
CONTAINER_ENV = {'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db'}
DOCKER = {
    'url': 'unix://var/run/docker.sock',
    'network_mode': 'host',
    'secrets_env': ['CONVEYOR_SECRETS_KEY', 'CONVEYOR_SECRETS_OWNER'],
}
MOUNTS = []
# What every op runs, in each mode: conveyor.runtime.step_command, with the values of the run left open.
COMMANDS = {
    'python': [
        '/opt/conveyor/bin/python',
        '-m',
        'conveyor.runtime',
        'run-step',
        '--deployment',
        '8a9a2b9a7851c24a1b532ca674773596',
        '--step',
        STEP,
        '--run-key',
        ('dagster:', RUN_ID),
        '--param',
        ('n=', Param('n')),
        '--orchestrator-run-id',
        RUN_ID,
    ],
}
STEPS = [
    {
        'op': 'load_data',
        'step': 'load_data',
        'upstream': [],
        'description': "conveyor step 'load_data' (load_data)",
        'tags': {'conveyor/step': 'load_data'},
        'retry': None,
        'pool': None,
        'mode': 'python',
        'image': None,
        'environment': {},
        'secrets': False,
    },
    {
        'op': 'split',
        'step': 'split',
        'upstream': ['load_data'],
        'description': "conveyor step 'split' (split)",
        'tags': {'conveyor/step': 'split'},
        'retry': {'max_retries': 1, 'delay': 0.0, 'backoff': None, 'jitter': None},
        'pool': None,
        'mode': 'python',
        'image': None,
        'environment': {},
        'secrets': False,
    },
    {
        'op': 'total',
        'step': 'total',
        'upstream': ['split'],
        'description': "conveyor step 'total' (total)",
        'tags': {'conveyor/step': 'total'},
        'retry': None,
        'pool': None,
        'mode': 'python',
        'image': None,
        'environment': {},
        'secrets': False,
    },
    {
        'op': 'total_2',
        'step': 'total_2',
        'upstream': ['split'],
        'description': "conveyor step 'total_2' (total)",
        'tags': {'conveyor/step': 'total_2'},
        'retry': None,
        'pool': None,
        'mode': 'python',
        'image': None,
        'environment': {},
        'secrets': False,
    },
]
# Settles the conveyor run of a Dagster run that failed or was cancelled (the sensors below).
FINISH = {
    'sensor': True,
    'interval': 30,
    'image': None,
    'command': [
        '/opt/conveyor/bin/python',
        '-m',
        'conveyor.runtime',
        'finish-run',
        '--deployment',
        '8a9a2b9a7851c24a1b532ca674773596',
        '--run-key',
        ('dagster:', RUN_ID),
        '--param',
        ('n=', Param('n')),
        '--orchestrator-run-id',
        RUN_ID,
    ],
}
SCHEDULE = None


# -- the same in every file ----------------------------------------------------------------------
STOP_GRACE = 10.0  # seconds a stopped step gets to record itself stopped
SAID = "conveyor: "  # how the step command's one-line messages begin


class NotJson(ValueError):
    """A parameter in a run's config that no JSON text can carry to the step command."""


def _json(name, value):
    # ASCII only: a lone surrogate in a run's config would make the argument unencodable.
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError):  # a YAML tag such as !!binary, or a Python object given to execute_job
        raise NotJson(
            f"parameter {name!r} in the run's config is a {type(value).__name__}, not a JSON value; "
            "give a number, string, boolean, null, list or mapping"
        ) from None


def _text(part, values, params):
    if isinstance(part, Param):
        return _json(part.name, params[part.name])
    if isinstance(part, Slot):
        return values[part.name]
    return part


def _argv(command, values, params):
    """A command of the tables, for one run: each element is one whole argument."""
    return ["".join(_text(p, values, params) for p in (a if isinstance(a, tuple) else (a,))) for a in command]


def _stop(proc):
    for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass


class _Said:
    """Reads a command's output for the step command's one-line error: its last line, if the step command said it."""

    def __init__(self):
        self.line = None
        self._partial = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, chunk, final=False):
        text = self._partial + self._decoder.decode(chunk, final)
        lines = text.split("\n")
        self._partial = "" if final else lines.pop()
        for line in lines:
            line = line.strip()
            if line:  # what came before a traceback's last line would be the wrong reason
                self.line = line if line.startswith(SAID) else None


def _pass_on(stream, said):
    out = getattr(sys.stderr, "buffer", None)
    while True:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        said.feed(chunk)
        try:
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sys.stderr.write(chunk.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass  # this process's output is gone; the step's log is in the store
    said.feed(b"", final=True)
    stream.close()


def _run_process(argv, env):
    """Run a command in its own process group, which ends when this process does.

    Returns its exit code and the last line the step command said on stderr (its one-line error).
    """
    env = {**os.environ, **env, PARENT_PID_VARIABLE: str(os.getpid())}
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    said = _Said()
    reader = threading.Thread(target=_pass_on, args=(proc.stderr, said), daemon=True)
    reader.start()
    try:
        code = proc.wait()
    except BaseException:  # Dagster stops the op (a terminated run, Ctrl-C)
        _stop(proc)
        raise
    reader.join(timeout=STOP_GRACE)  # a process the step left behind may still hold the pipe
    return code, said.line


def _run_container(argv, env, image, labels):
    """Run a command in a container of the image, its output on this process's.

    Returns its exit code and the last line the step command said (its one-line error).
    """
    import docker
    from docker.types import Mount

    client = docker.DockerClient(base_url=DOCKER["url"])
    try:
        container = client.containers.run(
            image,
            entrypoint=argv[:1],
            command=argv[1:],
            environment=env,
            network_mode=DOCKER["network_mode"],
            # With host networking the container would share this machine's hostname, and the
            # metadata store would take this machine's runs for runs of the container.
            hostname="conveyor-step",
            mounts=[Mount(target=target, source=source, type="bind", read_only=ro) for source, target, ro in MOUNTS],
            labels={"conveyor.deployment": CONVEYOR_DEPLOYMENT, **labels},
            detach=True,
        )
        try:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            said = _Said()
            for chunk in container.logs(stream=True, follow=True):
                said.feed(chunk)
                sys.stdout.write(decoder.decode(chunk))
                sys.stdout.flush()
            said.feed(b"", final=True)
            return container.wait()["StatusCode"], said.line
        except BaseException:
            try:
                container.kill(signal="SIGINT")  # the step records itself stopped
                container.wait(timeout=STOP_GRACE)
            except Exception:
                pass
            raise
        finally:
            container.remove(force=True)
    finally:
        client.close()


def _run(argv, environment, image, labels, secrets=False):
    if image is None:
        return _run_process(argv, {**environment, **PROCESS_ENV})
    # Secrets are resolved in the container: it needs the key, from this process's environment.
    passed = {name: os.environ[name] for name in DOCKER["secrets_env"] if secrets and name in os.environ}
    # On a conveyor server every step joins its run with this process's credential.
    passed.update({name: os.environ[name] for name in DOCKER.get("server_env", ()) if name in os.environ})
    return _run_container(argv, {**environment, **passed, **CONTAINER_ENV}, image, labels)


def _how(code):
    if code < 0:
        return f"was killed by signal {-code}"
    known = {2: "could not start (exit code 2)", 130: "was stopped (exit code 130)"}
    return known.get(code, f"failed (exit code {code})")


def _step_op(spec):
    retry = spec["retry"]
    policy = None
    if retry is not None:
        policy = dg.RetryPolicy(
            max_retries=retry["max_retries"],
            delay=retry["delay"],
            backoff=None if retry["backoff"] is None else dg.Backoff[retry["backoff"]],
            jitter=None if retry["jitter"] is None else dg.Jitter[retry["jitter"]],
        )

    @dg.op(
        name=spec["op"],
        description=spec["description"],
        ins={"after": dg.In(dg.Nothing)} if spec["upstream"] else None,
        out=dg.Out(dg.Nothing),
        required_resource_keys={"conveyor"},
        tags=spec["tags"],
        retry_policy=policy,
        pool=spec["pool"],
    )
    def run_step(context):
        values = {"run_id": context.run_id, "step": spec["step"], "image": spec["image"]}
        try:
            argv = _argv(COMMANDS[spec["mode"]], values, context.resources.conveyor)
        except NotJson as exc:
            description = f"conveyor step {spec['step']!r} did not start: {exc}"
            raise dg.Failure(description=description, allow_retries=False) from None
        labels = {"conveyor.step": spec["step"], "dagster.run": context.run_id}
        code, said = _run(argv, spec["environment"], spec["image"], labels, spec["secrets"])
        if code != 0:
            # The step command's own line says what went wrong (a parameter the run's config got wrong, ...).
            why = said if said is not None else "its output is in this op's logs"
            raise dg.Failure(
                description=f"conveyor step {spec['step']!r} {_how(code)}; {why}",
                # Exit code 2: the command or its setup is wrong, and another try changes nothing.
                allow_retries=code != 2,
            )

    return run_step


def _parameters(init_context):
    return {**PARAMETERS, **init_context.resource_config}


conveyor_parameters = dg.ResourceDefinition(
    resource_fn=_parameters,
    config_schema={
        name: dg.Field(dg.Any, default_value=value, is_required=False) for name, value in PARAMETERS.items()
    },
    description="the parameters of the conveyor pipeline (JSON values)",
)
OPS = {spec["step"]: _step_op(spec) for spec in STEPS}


@dg.job(
    name=JOB_NAME,
    description=JOB["description"],
    tags=JOB["tags"],
    resource_defs={"conveyor": conveyor_parameters},
    executor_def=dg.multiprocess_executor.configured(JOB["executor"]),
)
def conveyor_job():
    done = {}
    for spec in STEPS:  # upstream steps come first
        op = OPS[spec["step"]]
        done[spec["step"]] = op(after=[done[u] for u in spec["upstream"]]) if spec["upstream"] else op()


def _finish(context):
    """Settle the conveyor run of a Dagster run that ended before its steps could."""
    run = context.dagster_run
    config = (((run.run_config or {}).get("resources") or {}).get("conveyor") or {}).get("config") or {}
    params = {**PARAMETERS, **config}
    for name, value in params.items():
        try:
            _json(name, value)
        except NotJson:  # no step could start: the run is recorded failed with what it was given, as text
            params[name] = repr(value)
    argv = _argv(FINISH["command"], {"run_id": run.run_id}, params)
    labels = {"dagster.run": run.run_id}
    code, _ = _run(argv, {}, FINISH["image"], labels)
    if code != 0:
        raise RuntimeError(f"conveyor finish-run for Dagster run {run.run_id} {_how(code)}")


def _in_window(context):
    when = context.scheduled_execution_time
    if when is None:
        return True
    start, end = SCHEDULE["start"], SCHEDULE["end"]
    return (start is None or when >= start) and (end is None or when <= end)


SENSORS = []
if FINISH["sensor"]:
    for status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        SENSORS.append(
            dg.run_status_sensor(
                run_status=status,
                name=f"{JOB_NAME}_conveyor_{status.value.lower()}",
                description=f"settles the conveyor run of a {status.value.lower()} run of {JOB_NAME}",
                monitored_jobs=[conveyor_job],
                minimum_interval_seconds=FINISH["interval"],
                default_status=dg.DefaultSensorStatus.RUNNING,
            )(_finish)
        )
SCHEDULES = []
if SCHEDULE is not None:
    SCHEDULES.append(
        dg.ScheduleDefinition(
            name=f"{JOB_NAME}_schedule",
            job=conveyor_job,
            cron_schedule=SCHEDULE["cron"],
            execution_timezone=SCHEDULE["timezone"],
            should_execute=_in_window,
            default_status=dg.DefaultScheduleStatus[SCHEDULE["status"]],
        )
    )

defs = dg.Definitions(jobs=[conveyor_job], schedules=SCHEDULES, sensors=SENSORS)
