#!/usr/bin/env bash
# conveyor pipeline "pydantic_param", deployment 8bd57da3aeb9220405b8352d7ffe47ff:
# its steps one after another, each through conveyor's step command.
set -u
trap 'exit 130' INT TERM

if [ -z "${CONVEYOR_STORE_URL:-}" ]; then export CONVEYOR_STORE_URL=sqlite:////srv/conveyor.db; fi
if [ -z "${CONVEYOR_SOURCE_ROOT:-}" ]; then export CONVEYOR_SOURCE_ROOT=/srv/code; fi
RUN_ID="${CONVEYOR_TEMPLATE_RUN_ID:-}"
if [ -z "$RUN_ID" ]; then
  RUN_ID=$(/opt/conveyor/bin/python -c 'import uuid; print(uuid.uuid4().hex)') || exit 2
fi

attempt() {  # attempt RETRIES DELAY COMMAND...
  local retries=$1 delay=$2 n=0 code
  shift 2
  while :; do
    "$@"
    code=$?
    if [ "$code" -ne 1 ] || [ "$n" -ge "$retries" ]; then return "$code"; fi
    n=$((n + 1))
    sleep "$delay"
  done
}

failed=0

# step "data_points"
ok_0=0
if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 8bd57da3aeb9220405b8352d7ffe47ff --step data_points --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
  ok_0=1
else
  failed=1
fi

# step "train"
ok_1=0
if [ "$ok_0" = 1 ]; then
  if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 8bd57da3aeb9220405b8352d7ffe47ff --step train --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
    ok_1=1
  else
    failed=1
  fi
fi

# Settle what the steps left unsettled (a step that never started is recorded skipped).
/opt/conveyor/bin/python -m conveyor.runtime finish-run --deployment 8bd57da3aeb9220405b8352d7ffe47ff --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID" || failed=1
exit "$failed"
