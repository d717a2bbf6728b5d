# An Airflow DAG written by conveyor-airflow. Do not edit it: export the pipeline again.
#
# Each task runs one step of a deployment kept in conveyor's metadata store, with
# `python -m conveyor.runtime run-step`; a teardown task then settles the conveyor
# run with `python -m conveyor.runtime finish-run`, however the steps ended. Names
# and settings reach those processes as environment variables or whole arguments
# wrapped in literal(), so neither the shell nor Airflow's templating ever reads
# them as code.
from __future__ import annotations

import datetime

from airflow.sdk import DAG, literal
from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import Mount
from docker.types import DeviceRequest

CONVEYOR_PIPELINE = 'containers'
CONVEYOR_DEPLOYMENT = 'b13fecf371c456fe39fb88db7d82425e'

# Container modes: all tasks of one DAG run share one conveyor run, keyed by Airflow's run id.
CONTAINER_ENV = {'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db'}
MOUNTS = [Mount(source='/srv', target='/srv', type='bind', read_only=False), Mount(source='/etc/conveyor', target='/etc/conveyor', type='bind', read_only=True)]

with DAG(
    dag_id='containers',
    doc_md='conveyor pipeline, deployment `b13fecf371c456fe39fb88db7d82425e`',
    schedule=None,
    catchup=False,
    params={'n': 5},
    tags=['conveyor'],
) as dag:
    tasks = {}
    tasks['load'] = DockerOperator(
        task_id='load',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        command=[literal('python'), literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('b13fecf371c456fe39fb88db7d82425e'), literal('--step'), literal('load'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        environment=literal({**CONTAINER_ENV}),
        docker_url='unix://var/run/docker.sock',
        network_mode='host',
        hostname='conveyor-step',
        mount_tmp_dir=False,
        auto_remove='force',
        mounts=literal(MOUNTS),
        do_xcom_push=False,
        retries=0,
    )
    tasks['train'] = DockerOperator(
        task_id='train',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        command=[literal('python'), literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('b13fecf371c456fe39fb88db7d82425e'), literal('--step'), literal('train'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        environment=literal({**CONTAINER_ENV}),
        docker_url='unix://var/run/docker.sock',
        network_mode='host',
        hostname='conveyor-step',
        mount_tmp_dir=False,
        auto_remove='force',
        mounts=literal(MOUNTS),
        cpus=0.5,
        mem_limit=1610612736,
        do_xcom_push=False,
        retries=0,
    )
    tasks['total'] = DockerOperator(
        task_id='total',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        command=[literal('python'), literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('b13fecf371c456fe39fb88db7d82425e'), literal('--step'), literal('total'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        environment=literal({**CONTAINER_ENV}),
        docker_url='unix://var/run/docker.sock',
        network_mode='host',
        hostname='conveyor-step',
        mount_tmp_dir=False,
        auto_remove='force',
        mounts=literal(MOUNTS),
        do_xcom_push=False,
        retries=0,
        pool='crunch',
        queue='cpu',
        priority_weight=5,
    )
    tasks['tune'] = DockerOperator(
        task_id='tune',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        command=[literal('python'), literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('b13fecf371c456fe39fb88db7d82425e'), literal('--step'), literal('tune'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        environment=literal({**CONTAINER_ENV}),
        docker_url='unix://var/run/docker.sock',
        network_mode='host',
        hostname='conveyor-step',
        mount_tmp_dir=False,
        auto_remove='force',
        mounts=literal(MOUNTS),
        device_requests=[DeviceRequest(count=1, capabilities=[['gpu']])],
        do_xcom_push=False,
        retries=0,
    )

    tasks['load'] >> tasks['train']
    tasks['load'] >> tasks['total']
    [tasks['load'], tasks['total']] >> tasks['tune']

    # Runs after every step task, whatever its state, and leaves the DAG run's state to them: it settles the
    # conveyor run (a step whose process was killed failed) and runs the failure hooks still due, once.
    finish = DockerOperator(
        task_id='conveyor-finish-run',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        command=[literal('python'), literal('-m'), literal('conveyor.runtime'), literal('finish-run'), literal('--deployment'), literal('b13fecf371c456fe39fb88db7d82425e'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        environment=literal({**CONTAINER_ENV}),
        docker_url='unix://var/run/docker.sock',
        network_mode='host',
        hostname='conveyor-step',
        mount_tmp_dir=False,
        auto_remove='force',
        mounts=literal(MOUNTS),
        do_xcom_push=False,
        retries=2,
        retry_delay=datetime.timedelta(seconds=15.0),
    )
    [tasks['load'], tasks['train'], tasks['total'], tasks['tune']] >> finish.as_teardown()
