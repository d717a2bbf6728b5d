#!/usr/bin/env bash
# conveyor pipeline "fan_out", deployment 1d91e0dc5d495fb664d64dddb20b8f2c:
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

# step "source"
ok_0=0
if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --step source --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
  ok_0=1
else
  failed=1
fi

# step "branch"
ok_1=0
if [ "$ok_0" = 1 ]; then
  if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --step branch --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
    ok_1=1
  else
    failed=1
  fi
fi

# step "branch_2"
ok_2=0
if [ "$ok_0" = 1 ]; then
  if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --step branch_2 --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
    ok_2=1
  else
    failed=1
  fi
fi

# step "branch_3"
ok_3=0
if [ "$ok_0" = 1 ]; then
  if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --step branch_3 --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
    ok_3=1
  else
    failed=1
  fi
fi

# step "branch_4"
ok_4=0
if [ "$ok_0" = 1 ]; then
  if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --step branch_4 --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
    ok_4=1
  else
    failed=1
  fi
fi

# step "join"
ok_5=0
if [ "$ok_1" = 1 ] && [ "$ok_2" = 1 ] && [ "$ok_3" = 1 ] && [ "$ok_4" = 1 ]; then
  if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --step join --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
    ok_5=1
  else
    failed=1
  fi
fi

# step "announce"
ok_6=0
if [ "$ok_5" = 1 ]; then
  if attempt 0 0.0 /opt/conveyor/bin/python -m conveyor.runtime run-step --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --step announce --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID"; then
    ok_6=1
  else
    failed=1
  fi
fi

# Settle what the steps left unsettled (a step that never started is recorded skipped).
/opt/conveyor/bin/python -m conveyor.runtime finish-run --deployment 1d91e0dc5d495fb664d64dddb20b8f2c --run-key template:"$RUN_ID" --orchestrator-run-id "$RUN_ID" || failed=1
exit "$failed"
