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
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.docker.operators.docker import DockerOperator

CONVEYOR_PIPELINE = 'golden'
CONVEYOR_DEPLOYMENT = 'ea8e5a4b368b6a0d190a53a48c8620fa'

# python mode: the task's shell only expands variables; every conveyor value is in `env`.
RUN_STEP = 'exec "$CONVEYOR_PYTHON" -m conveyor.runtime run-step --deployment "$CONVEYOR_DEPLOYMENT" --step "$CONVEYOR_STEP" --run-key "airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID" --params \'{{ dag_run.conf | tojson }}\' --orchestrator-run-id "$AIRFLOW_CTX_DAG_RUN_ID"'
FINISH_RUN = 'exec "$CONVEYOR_PYTHON" -m conveyor.runtime finish-run --deployment "$CONVEYOR_DEPLOYMENT" --run-key "airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID" --params \'{{ dag_run.conf | tojson }}\' --orchestrator-run-id "$AIRFLOW_CTX_DAG_RUN_ID"'
PYTHON_ENV = {'CONVEYOR_PYTHON': '/opt/conveyor/bin/python', 'CONVEYOR_DEPLOYMENT': CONVEYOR_DEPLOYMENT, 'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db', 'CONVEYOR_SOURCE_ROOT': '/srv/code'}

# Container modes: all tasks of one DAG run share one conveyor run, keyed by Airflow's run id.
CONTAINER_ENV = {'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db'}

with DAG(
    dag_id='nightly-golden',
    dag_display_name='golden',
    description='the nightly run',
    doc_md='conveyor pipeline, deployment `ea8e5a4b368b6a0d190a53a48c8620fa`',
    schedule='0 6 * * 1-5',
    start_date=datetime.datetime.fromisoformat('2026-01-05T05:00:00+00:00'),
    end_date=datetime.datetime.fromisoformat('2027-01-01T00:00:00+00:00'),
    catchup=True,
    params={'n': 5},
    tags=['conveyor', 'team-a'],
    max_active_runs=1,
    is_paused_upon_creation=False,
    dagrun_timeout=datetime.timedelta(seconds=3600.0),
) as dag:
    tasks = {}
    tasks['load'] = BashOperator(
        task_id='load',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'load'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
        owner='data',
        retry_exponential_backoff=2.0,
        max_retry_delay=datetime.timedelta(seconds=600.0),
    )
    tasks['square'] = BashOperator(
        task_id='square',
        bash_command=RUN_STEP,
        env=literal({'MODE': 'fast', 'TOKEN': '{{api_token.value}}', **PYTHON_ENV, 'CONVEYOR_STEP': 'square'}),
        append_env=True,
        do_xcom_push=False,
        retries=2,
        retry_delay=datetime.timedelta(seconds=5.0),
        execution_timeout=datetime.timedelta(seconds=600.0),
        owner='data',
        retry_exponential_backoff=2.0,
        max_retry_delay=datetime.timedelta(seconds=600.0),
    )
    tasks['total'] = BashOperator(
        task_id='total',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'total'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
        pool='crunch',
        queue='cpu',
        priority_weight=5,
        owner='data',
        retry_exponential_backoff=2.0,
        max_retry_delay=datetime.timedelta(seconds=600.0),
    )
    tasks['total_2'] = DockerOperator(
        task_id='total_2',
        image=literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'),
        command=[literal('python'), literal('-m'), literal('conveyor.runtime'), literal('run-step'), literal('--deployment'), literal('ea8e5a4b368b6a0d190a53a48c8620fa'), literal('--step'), literal('total_2'), literal('--run-key'), 'airflow:{{ dag.dag_id }}:{{ run_id }}', literal('--image'), literal('127.0.0.1:5000/conveyor/pipelines@sha256:abababababababababababababababababababababababababababababababab'), literal('--params'), '{{ dag_run.conf | tojson }}', literal('--orchestrator-run-id'), '{{ run_id }}'],
        environment=literal({**CONTAINER_ENV}),
        docker_url='unix://var/run/docker.sock',
        network_mode='host',
        hostname='conveyor-step',
        mount_tmp_dir=False,
        auto_remove='force',
        do_xcom_push=False,
        retries=0,
        pool='docker',
        queue='cpu',
        priority_weight=5,
        owner='data',
        executor='LocalExecutor',
        retry_exponential_backoff=2.0,
        max_retry_delay=datetime.timedelta(seconds=600.0),
    )

    tasks['load'] >> tasks['square']
    tasks['square'] >> tasks['total']
    tasks['square'] >> tasks['total_2']

    # Runs after every step task, whatever its state, and leaves the DAG run's state to them: it settles the
    # conveyor run (a step whose process was killed failed) and runs the failure hooks still due, once.
    finish = BashOperator(
        task_id='conveyor-finish-run',
        bash_command=FINISH_RUN,
        env=literal({**PYTHON_ENV}),
        append_env=True,
        do_xcom_push=False,
        retries=2,
        retry_delay=datetime.timedelta(seconds=15.0),
        owner='data',
    )
    [tasks['load'], tasks['square'], tasks['total'], tasks['total_2']] >> finish.as_teardown()
