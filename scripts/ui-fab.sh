#!/usr/bin/env bash
# `make ui AUTH=fab`: the Airflow UI under the FAB auth manager (per-client roles), the embedded way.
# `airflow standalone` always forces the SimpleAuthManager, so this starts the components itself:
# scheduler, dag-processor and triggerer in the background, the api-server in the foreground;
# Ctrl-C stops them all. Expects the environment `make ui` exports (AIRFLOW_HOME, port, FAB).
set -euo pipefail

BIN=${BIN:?run through make ui AUTH=fab}
PORT=${PORT:-8080}

"$BIN/marketmap" access sync

# An admin (architect) user, created once with a generated password kept next to Airflow's
# metadata, as the SimpleAuthManager keeps its own; printed once, like `airflow standalone` does.
PWFILE="$AIRFLOW_HOME/fab_admin_password.generated"
if [ ! -s "$PWFILE" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(18))' > "$PWFILE")
    "$BIN/marketmap" access add-user --admin --username admin --email admin@localhost \
        --password-stdin < "$PWFILE"
    echo "FAB admin user: admin, password: $(cat "$PWFILE") (kept in $PWFILE)"
else
    echo "FAB admin user: admin, password in $PWFILE"
fi

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait || true; }
trap cleanup EXIT INT TERM
mkdir -p "$AIRFLOW_HOME/logs"
for component in scheduler dag-processor triggerer; do
    "$BIN/airflow" "$component" > "$AIRFLOW_HOME/logs/$component.out" 2>&1 &
    pids+=($!)
done
echo "Airflow UI (FAB auth manager): http://localhost:$PORT — logs of the other components in $AIRFLOW_HOME/logs/*.out"
"$BIN/airflow" api-server --port "$PORT" &
pids+=($!)
wait "${pids[-1]}"
