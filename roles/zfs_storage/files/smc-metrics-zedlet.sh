#!/bin/sh
# Installed by smc.backend (role zfs_storage) as /etc/zfs/zed.d/<event class>-smc-metrics.sh: a pool or vdev
# state change rewrites the agent's host metrics (smc_pool_health, smc-host.prom) at once, so the metric follows
# the pool instead of keeping the state of the agent's last cycle until the next one. One writer at a time; a
# write that cannot start within a minute is left to the next event or cycle.
[ -x /usr/local/sbin/smc-zfs-agent ] || exit 0
exec flock -w 60 /run/smc-zed-metrics.lock /usr/local/sbin/smc-zfs-agent metrics >/dev/null 2>&1
