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
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

CONVEYOR_PIPELINE = 'containers'
CONVEYOR_DEPLOYMENT = '435b0cfad87bc8cb18b9fb3456802b25'

# Container modes: all tasks of one DAG run share one conveyor run, keyed by Airflow's run id.
CONTAINER_ENV = {'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db'}

with DAG(
    dag_id='containers',
    doc_md='conveyor pipeline, deployment `435b0cfad87bc8cb18b9fb3456802b25`',
    schedule=None,
    catchup=False,
    params={'n': 5},
    tags=['conveyor'],
) as dag:
    tasks = {}
    tasks['load'] = KubernetesPodOperator(
        task_id='load',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        cmds=[literal('python')],
        arguments=[literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('435b0cfad87bc8cb18b9fb3456802b25'), literal('--step'), literal('load'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        env_vars=literal({**CONTAINER_ENV}),
        namespace=literal('pipelines'),
        in_cluster=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['train'] = KubernetesPodOperator(
        task_id='train',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        cmds=[literal('python')],
        arguments=[literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('435b0cfad87bc8cb18b9fb3456802b25'), literal('--step'), literal('train'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        env_vars=literal({**CONTAINER_ENV}),
        namespace=literal('pipelines'),
        in_cluster=True,
        container_resources=literal(k8s.V1ResourceRequirements(requests={'cpu': '500m', 'memory': '1536Mi'}, limits={'memory': '1536Mi'})),
        node_selector=literal({'pool': 'highmem'}),
        labels=literal({'team': 'ml'}),
        annotations=literal({'note': '{{ ds }}'}),
        service_account_name='runner',
        image_pull_policy='IfNotPresent',
        do_xcom_push=False,
        retries=0,
    )
    tasks['total'] = KubernetesPodOperator(
        task_id='total',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        cmds=[literal('python')],
        arguments=[literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('435b0cfad87bc8cb18b9fb3456802b25'), literal('--step'), literal('total'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        env_vars=literal({**CONTAINER_ENV}),
        namespace=literal('pipelines'),
        in_cluster=True,
        do_xcom_push=False,
        retries=0,
        pool='crunch',
        queue='cpu',
        priority_weight=5,
    )
    tasks['tune'] = KubernetesPodOperator(
        task_id='tune',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        cmds=[literal('python')],
        arguments=[literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('435b0cfad87bc8cb18b9fb3456802b25'), literal('--step'), literal('tune'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        env_vars=literal({**CONTAINER_ENV}),
        namespace=literal('pipelines'),
        in_cluster=True,
        container_resources=literal(k8s.V1ResourceRequirements(requests=None, limits={'nvidia.com/gpu': '1'})),
        node_selector=literal({'cloud.google.com/gke-accelerator': 'nvidia-tesla-t4'}),
        do_xcom_push=False,
        retries=0,
    )

    tasks['load'] >> tasks['train']
    tasks['load'] >> tasks['total']
    [tasks['load'], tasks['total']] >> tasks['tune']

    # Runs after every step task, whatever its state, and leaves the DAG run's state to them: it settles the
    # conveyor run (a step whose process was killed failed) and runs the failure hooks still due, once.
    finish = KubernetesPodOperator(
        task_id='conveyor-finish-run',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        cmds=[literal('python')],
        arguments=[literal('-m'), literal('conveyor.runtime'), literal('finish-run'), literal('--deployment'), literal('435b0cfad87bc8cb18b9fb3456802b25'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        env_vars=literal({**CONTAINER_ENV}),
        namespace=literal('pipelines'),
        in_cluster=True,
        do_xcom_push=False,
        retries=2,
        retry_delay=datetime.timedelta(seconds=15.0),
    )
    [tasks['load'], tasks['train'], tasks['total'], tasks['tune']] >> finish.as_teardown()
