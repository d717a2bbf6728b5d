#!/usr/bin/env bash
# Docker daemon, a local v2 registry and mmdebstrap (for building base images
# without a public registry), plus the docker SDK for the test fixtures.
# Idempotent; runs as root on Debian bookworm.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
PKGS=(docker.io docker-registry mmdebstrap)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Whatever daemons already run belong to someone else and are left alone.
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_pid() { [ -s "$1" ] && cat "$1" || true; }
docker_pid_before=$(read_pid /var/run/docker.pid)
pid_alive "$docker_pid_before" || docker_pid_before=""
registry_pids_before=$(pgrep -x docker-registry || true)

if [ ${#missing[@]} -gt 0 ]; then
    # Postinst scripts start services through invoke-rc.d; a policy-rc.d that
    # answers 101 forbids that. Only ours is removed again.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    cleanup_policy() { [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d; }
    trap cleanup_policy EXIT

    # A fresh machine may have no package lists yet; refresh only when the
    # candidates are unknown, so reruns stay offline and fast.
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || { apt-get update -qq && apt-get install -y -q --no-install-recommends "${missing[@]}"; }

    # Belt and braces: if a postinst still got a daemon going, stop it by its
    # own pidfile/init script (the tests start their own on demand).
    docker_pid_now=$(read_pid /var/run/docker.pid)
    if pid_alive "$docker_pid_now" && [ "$docker_pid_now" != "$docker_pid_before" ]; then
        if [ -x /etc/init.d/docker ]; then /etc/init.d/docker stop || true; fi
        if pid_alive "$docker_pid_now"; then
            kill -TERM "$docker_pid_now" 2>/dev/null || true
            for _ in $(seq 30); do pid_alive "$docker_pid_now" || break; sleep 1; done
        fi
    fi
    for pid in $(pgrep -x docker-registry || true); do
        case " $registry_pids_before " in *" $pid "*) continue ;; esac
        if [ -x /etc/init.d/docker-registry ]; then /etc/init.d/docker-registry stop || true; fi
        pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null || true
    done
fi

# The SDK goes into whichever python runs the tests.
PY=${PYTHON:-python}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import docker' 2>/dev/null || "$PY" -m pip install -q docker
