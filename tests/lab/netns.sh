#!/bin/sh
# The lab's private network: a bridge inside a network namespace of its own, and one tap per VM
# enslaved to it. Inter-host traffic flows only there, never in the host's namespace.
#   netns.sh up NS BRIDGE            create the namespace and bridge (idempotent)
#   netns.sh prepare-tap NS TAP      make TAP exist in the host namespace, so libvirt can open it
#   netns.sh attach-tap NS BRIDGE TAP  move TAP into NS and enslave it (no-op if already there)
#   netns.sh has-tap NS TAP          exit 0 if TAP is inside NS
#   netns.sh down NS TAP...          delete the taps and the namespace
# Prints "changed" when it changed something.
set -eu
cmd=$1; ns=$2; shift 2
in_ns() { ip -n "$ns" link show "$1" >/dev/null 2>&1; }
case "$cmd" in
up)
    br=$1
    if ! ip netns list | grep -qw "$ns"; then ip netns add "$ns"; echo changed; fi
    ip -n "$ns" link set lo up
    if ! in_ns "$br"; then
        ip -n "$ns" link add "$br" type bridge
        ip -n "$ns" link set "$br" type bridge stp_state 0 forward_delay 0
        echo changed
    fi
    ip -n "$ns" link set "$br" up ;;
prepare-tap)
    tap=$1
    if in_ns "$tap"; then ip -n "$ns" link set "$tap" netns "$$"; echo changed; fi
    if ! ip link show "$tap" >/dev/null 2>&1; then ip tuntap add dev "$tap" mode tap; echo changed; fi ;;
attach-tap)
    br=$1; tap=$2
    if ! in_ns "$tap"; then
        ip link show "$tap" >/dev/null 2>&1 || { echo "tap $tap exists nowhere; start its VM first" >&2; exit 1; }
        ip link set "$tap" netns "$ns"; echo changed
    fi
    ip -n "$ns" link set "$tap" master "$br" up ;;
has-tap)
    in_ns "$1" ;;
down)
    for tap in "$@"; do
        if in_ns "$tap"; then ip -n "$ns" link del "$tap"; echo changed; fi
        if ip link show "$tap" >/dev/null 2>&1; then ip link del "$tap"; echo changed; fi
    done
    if ip netns list | grep -qw "$ns"; then ip netns del "$ns"; echo changed; fi ;;
*) echo "usage: netns.sh up|prepare-tap|attach-tap|has-tap|down NS ..." >&2; exit 2 ;;
esac
