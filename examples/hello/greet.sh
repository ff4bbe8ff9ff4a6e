#!/usr/bin/env bash
# Runs in the agent phase.
set -euo pipefail
echo "$GREETING from the agent phase (user $(id -u), prepared by $PREPARED_BY at $(cat .prepared-at))"
if curl -sS --max-time 3 http://example.invalid >/dev/null 2>&1; then echo "network: reachable"; else echo "network: none, as promised"; fi
echo "$GREETING, world" > greeting.txt
echo "wrote greeting.txt; see changes.patch in the run record"
