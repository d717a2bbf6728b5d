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

CONVEYOR_PIPELINE = 'evil pipeline.v2 ünï 0'
CONVEYOR_DEPLOYMENT = 'd5ad5efd73e676aac0eca6562018de87'

# python mode: the task's shell only expands variables; every conveyor value is in `env`.
RUN_STEP = 'exec "$CONVEYOR_PYTHON" -m conveyor.runtime run-step --deployment "$CONVEYOR_DEPLOYMENT" --step "$CONVEYOR_STEP" --run-key "airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID" --params \'{{ dag_run.conf | tojson }}\' --orchestrator-run-id "$AIRFLOW_CTX_DAG_RUN_ID"'
FINISH_RUN = 'exec "$CONVEYOR_PYTHON" -m conveyor.runtime finish-run --deployment "$CONVEYOR_DEPLOYMENT" --run-key "airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID" --params \'{{ dag_run.conf | tojson }}\' --orchestrator-run-id "$AIRFLOW_CTX_DAG_RUN_ID"'
PYTHON_ENV = {'CONVEYOR_PYTHON': '/opt/conveyor/bin/python', 'CONVEYOR_DEPLOYMENT': CONVEYOR_DEPLOYMENT, 'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db', 'CONVEYOR_SOURCE_ROOT': '/srv/code'}

with DAG(
    dag_id='evil_pipeline.v2__n__0',
    dag_display_name='evil pipeline.v2 ünï 0',
    doc_md='conveyor pipeline, deployment `d5ad5efd73e676aac0eca6562018de87`',
    schedule=None,
    catchup=False,
    params={'n': 2, 'note': 'x\'); __import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\'); (\'$(touch "$CONVEYOR_CANARY")'},
    tags=['conveyor'],
) as dag:
    tasks = {}
    tasks['import_os'] = BashOperator(
        task_id='import_os',
        task_display_name='import os',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'import os'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['run.id'] = BashOperator(
        task_id='run.id',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'run.id'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['0_dag'] = BashOperator(
        task_id='0_dag',
        task_display_name='0 dag',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': '0 dag'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['__init__'] = BashOperator(
        task_id='__init__',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': '__init__'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['build.sh'] = BashOperator(
        task_id='build.sh',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'build.sh'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['_n_c_d__na_ve'] = BashOperator(
        task_id='_n_c_d__na_ve',
        task_display_name='ünïcödé naïve',
        bash_command=RUN_STEP,
        env=literal({'CONVEYOR_NOTE': 'x\'); __import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\'); (\'', **PYTHON_ENV, 'CONVEYOR_STEP': 'ünïcödé naïve'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'] = BashOperator(
        task_id='xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )

    tasks['import_os'] >> tasks['run.id']
    tasks['run.id'] >> tasks['0_dag']
    tasks['0_dag'] >> tasks['__init__']
    tasks['__init__'] >> tasks['build.sh']
    tasks['build.sh'] >> tasks['_n_c_d__na_ve']
    tasks['_n_c_d__na_ve'] >> tasks['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx']

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
    [tasks['import_os'], tasks['run.id'], tasks['0_dag'], tasks['__init__'], tasks['build.sh'], tasks['_n_c_d__na_ve'], tasks['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx']] >> finish.as_teardown()
