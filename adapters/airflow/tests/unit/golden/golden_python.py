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

CONVEYOR_PIPELINE = 'golden'
CONVEYOR_DEPLOYMENT = '07575c0cbc2464053dbafb210eba569f'

# python mode: the task's shell only expands variables; every conveyor value is in `env`.
RUN_STEP = 'exec "$CONVEYOR_PYTHON" -m conveyor.runtime run-step --deployment "$CONVEYOR_DEPLOYMENT" --step "$CONVEYOR_STEP" --run-key "airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID" --params \'{{ dag_run.conf | tojson }}\' --orchestrator-run-id "$AIRFLOW_CTX_DAG_RUN_ID"'
FINISH_RUN = 'exec "$CONVEYOR_PYTHON" -m conveyor.runtime finish-run --deployment "$CONVEYOR_DEPLOYMENT" --run-key "airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID" --params \'{{ dag_run.conf | tojson }}\' --orchestrator-run-id "$AIRFLOW_CTX_DAG_RUN_ID"'
PYTHON_ENV = {'CONVEYOR_PYTHON': '/opt/conveyor/bin/python', 'CONVEYOR_DEPLOYMENT': CONVEYOR_DEPLOYMENT, 'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db', 'CONVEYOR_SOURCE_ROOT': '/srv/code'}

with DAG(
    dag_id='golden',
    doc_md='conveyor pipeline, deployment `07575c0cbc2464053dbafb210eba569f`',
    schedule=None,
    catchup=False,
    params={'n': 5},
    tags=['conveyor'],
) as dag:
    tasks = {}
    tasks['load'] = BashOperator(
        task_id='load',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'load'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
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
    )
    tasks['total_2'] = BashOperator(
        task_id='total_2',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'total_2'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
        pool='crunch',
        queue='cpu',
        priority_weight=5,
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
    )
    [tasks['load'], tasks['square'], tasks['total'], tasks['total_2']] >> finish.as_teardown()
