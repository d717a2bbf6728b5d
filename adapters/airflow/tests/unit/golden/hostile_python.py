# An Airflow DAG written by conveyor-airflow. Do not edit it: export the pipeline again.
#
# Each task runs one step of a deployment kept in conveyor's metadata store, with
# `python -m conveyor.runtime run-step`. Names and settings reach that process as
# environment variables or whole arguments wrapped in literal(), so neither the
# shell nor Airflow's templating ever reads them as code.
from __future__ import annotations

import datetime

from airflow.sdk import DAG, literal
from airflow.providers.standard.operators.bash import BashOperator

CONVEYOR_PIPELINE = 'evil"\'\n__import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\') {{ ds }} $(id)'
CONVEYOR_DEPLOYMENT = 'f6a5709ab26d7c295a7b87279c2edbe1'

# python mode: the task's shell only expands variables; every conveyor value is in `env`.
RUN_STEP = (
    'exec "$CONVEYOR_PYTHON" -m conveyor.runtime run-step --deployment="$CONVEYOR_DEPLOYMENT"'
    ' --step="$CONVEYOR_STEP" --run-key="airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID"'
    ' --orchestrator-run-id="$AIRFLOW_CTX_DAG_RUN_ID"'
)
PYTHON_ENV = {'CONVEYOR_PYTHON': '/opt/conveyor/bin/python', 'CONVEYOR_DEPLOYMENT': CONVEYOR_DEPLOYMENT, 'CONVEYOR_STORE_URL': 'sqlite:////srv/conveyor.db', 'CONVEYOR_SOURCE_ROOT': '/srv/code'}

with DAG(
    dag_id='evil_____import____os__.system__touch___CONVEYOR_CANARY_______ds______id_',
    dag_display_name='evil"\'\n__import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\') {{ ds }} $(id)',
    doc_md='conveyor pipeline, deployment `f6a5709ab26d7c295a7b87279c2edbe1`',
    schedule=None,
    catchup=False,
    tags=['conveyor'],
) as dag:
    tasks = {}
    tasks['x______import____os__.system__touch___CONVEYOR_CANARY_______'] = BashOperator(
        task_id='x______import____os__.system__touch___CONVEYOR_CANARY_______',
        task_display_name='x\'); __import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\'); (\'',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': 'x\'); __import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\'); (\''}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['__touch___CONVEYOR_CANARY__'] = BashOperator(
        task_id='__touch___CONVEYOR_CANARY__',
        task_display_name='$(touch "$CONVEYOR_CANARY")',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': '$(touch "$CONVEYOR_CANARY")'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['_touch__CONVEYOR_CANARY______touch___CONVEYOR_CANARY____'] = BashOperator(
        task_id='_touch__CONVEYOR_CANARY______touch___CONVEYOR_CANARY____',
        task_display_name='`touch $CONVEYOR_CANARY`; "; touch "$CONVEYOR_CANARY"; "',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': '`touch $CONVEYOR_CANARY`; "; touch "$CONVEYOR_CANARY"; "'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['___run_id______if_True______dag.dag_id______endif______c___'] = BashOperator(
        task_id='___run_id______if_True______dag.dag_id______endif______c___',
        task_display_name='{{ run_id }}{% if True %}{{ dag.dag_id }}{% endif %}{# c #}',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': '{{ run_id }}{% if True %}{{ dag.dag_id }}{% endif %}{# c #}'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['--help'] = BashOperator(
        task_id='--help',
        bash_command=RUN_STEP,
        env=literal({**PYTHON_ENV, 'CONVEYOR_STEP': '--help'}),
        append_env=True,
        do_xcom_push=False,
        retries=0,
    )
    tasks['a___________________'] = BashOperator(
        task_id='a___________________',
        task_display_name='a\\\'\r\n\t\x0b\x0c\u2028\x85☃ """\'\'\' #',
        bash_command=RUN_STEP,
        env=literal({'CONVEYOR_NOTE': 'x\'); __import__(\'os\').system(\'touch "$CONVEYOR_CANARY"\'); (\'', **PYTHON_ENV, 'CONVEYOR_STEP': 'a\\\'\r\n\t\x0b\x0c\u2028\x85☃ """\'\'\' #'}),
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

    tasks['x______import____os__.system__touch___CONVEYOR_CANARY_______'] >> tasks['__touch___CONVEYOR_CANARY__']
    tasks['__touch___CONVEYOR_CANARY__'] >> tasks['_touch__CONVEYOR_CANARY______touch___CONVEYOR_CANARY____']
    tasks['_touch__CONVEYOR_CANARY______touch___CONVEYOR_CANARY____'] >> tasks['___run_id______if_True______dag.dag_id______endif______c___']
    tasks['___run_id______if_True______dag.dag_id______endif______c___'] >> tasks['--help']
    tasks['--help'] >> tasks['a___________________']
    tasks['a___________________'] >> tasks['build.sh']
