#!/usr/bin/env bash
# Announce the service address while dlisten is healthy, withdraw it otherwise.
#
#   health-check.sh [METRICS_ADDR:PORT] [BIRD_PROTOCOL]
#   (defaults: 127.0.0.1:9810 dlisten_vip; run it as a service next to bird)
#
# Every second: GET /health on dlisten's --metrics address. 200 ("serving")
# enables the BIRD static protocol that holds the service route; anything else
# (503 while draining after SIGTERM, a refused connection when stopped, a
# timeout) disables it, so the router stops sending new clients here while the
# draining connections finish. Two failures in a row withdraw (a lost probe on a
# busy box does not); one success announces again.
set -uo pipefail

metrics=${1:-127.0.0.1:9810}
proto=${2:-dlisten_vip}
interval=1
fails_to_withdraw=2

state=unknown
fails=0
while true; do
    if curl -fsS --max-time 1 -o /dev/null "http://$metrics/health"; then
        fails=0
        want=up
    else
        fails=$((fails + 1))
        want=$([ "$fails" -ge "$fails_to_withdraw" ] && echo down || echo "$state")
    fi
    if [ "$want" != "$state" ] && [ "$want" != unknown ]; then
        if [ "$want" = up ]; then
            birdc -s /run/bird/bird.ctl enable "$proto" >/dev/null && state=up &&
                logger -t dlisten-health "healthy: announcing ($proto enabled)"
        else
            birdc -s /run/bird/bird.ctl disable "$proto" >/dev/null && state=down &&
                logger -t dlisten-health "unhealthy: withdrawn ($proto disabled)"
        fi
    fi
    sleep "$interval"
done
