#!/usr/bin/env bash
# Build the lab's guest image: Debian bookworm with ZFS (bookworm-backports zfs-dkms, built in the
# chroot for the guest kernel) and every package the roles install, so converging needs no slow
# guest downloads. Cached under $SMC_LAB_CACHE/image-<recipe hash>/ and rebuilt only when this
# file (the recipe) changes. Prints the image directory on stdout's last line.
#
#   tests/lab/build-image.sh            build if needed, print the image dir
#   tests/lab/build-image.sh --print    print the image dir it would use (no build)
set -euo pipefail

CACHE=${SMC_LAB_CACHE:-$HOME/.cache/smc-lab}
SELF=$(readlink -f "$0")
RECIPE=$(sed -n '/^# --- recipe begin/,/^# --- recipe end/p' "$SELF" | sha256sum | cut -c1-16)
OUT="$CACHE/image-$RECIPE"
START=$(date +%s)

say() { printf '[lab-image %s] %s\n' "$(date -u -d "@$(( $(date +%s) - START ))" +%M:%S)" "$*" >&2; }
die() { printf 'lab-image: ERROR: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" = "--print" ]; then echo "$OUT"; exit 0; fi
if [ -f "$OUT/base.qcow2" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ]; then
    say "cached image $OUT (recipe $RECIPE)"
    echo "$OUT"; exit 0
fi

# One build at a time: a second caller waits, then finds the image cached.
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
if ! flock -n 9; then
    say "another build of the image is running; waiting for it"
    flock 9
    if [ -f "$OUT/base.qcow2" ]; then echo "$OUT"; exit 0; fi
fi

[ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap, chroot); run as root"
for tool in debootstrap mkfs.ext4 qemu-img chroot; do
    command -v "$tool" >/dev/null || die "'$tool' not found; run 'make deps' first"
done
mkdir -p "$CACHE"
free_gb=$(df -P --block-size=1G "$CACHE" | awk 'NR==2 {print $4}')
[ "$free_gb" -ge 10 ] || die "only ${free_gb} GiB free under $CACHE; the image build needs 10 GiB (set SMC_LAB_CACHE to a roomier place)"

# The Debian mirror this machine already uses (never hard-coded).
MIRROR=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
[ -n "$MIRROR" ] || MIRROR=$(grep -hs '^deb ' /etc/apt/sources.list 2>/dev/null | grep -v security | awk '{print $2}' | head -n1 || true)
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list(.d); configure apt first"

WORK="$CACHE/build-$RECIPE"
ROOT="$WORK/root"
LOG="$CACHE/build-$RECIPE.log"
cleanup() {
    for m in dev/pts dev sys proc; do umount -l "$ROOT/$m" 2>/dev/null || true; done
}
trap 'cleanup; say "FAILED; last lines of $LOG:"; tail -n 25 "$LOG" >&2' ERR
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK"; : > "$LOG"
say "building recipe $RECIPE from $MIRROR (log: $LOG)"

# --- recipe begin: everything that decides what the guest holds
BASE_PKGS=linux-image-amd64,systemd-sysv,systemd,udev,openssh-server,python3,sudo,ifupdown,isc-dhcp-client,iproute2,iputils-ping,kmod,procps,netbase,ca-certificates,initramfs-tools,zstd
say "debootstrap bookworm (about 2 min)"
debootstrap --variant=minbase --components=main,contrib --include="$BASE_PKGS" bookworm "$ROOT" "$MIRROR" >>"$LOG" 2>&1

cat > "$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main contrib
deb $MIRROR bookworm-updates main contrib
deb $MIRROR bookworm-backports main contrib
SRC
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
mount -t proc proc "$ROOT/proc"; mount --rbind /sys "$ROOT/sys"; mount --bind /dev "$ROOT/dev"; mount --bind /dev/pts "$ROOT/dev/pts"
in_root() { chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@" >>"$LOG" 2>&1; }
KVER=$(basename "$(ls -d "$ROOT"/lib/modules/*)")
say "guest kernel $KVER; apt-get update"
in_root apt-get update

say "build tools and kernel headers (about 1.5 min)"
in_root apt-get install -y --no-install-recommends linux-headers-amd64 dkms build-essential
say "zfs-dkms from bookworm-backports, module built for $KVER (about 6 min)"
in_root apt-get install -y -t bookworm-backports zfs-dkms zfsutils-linux
if ! ls "$ROOT/lib/modules/$KVER/updates/dkms/zfs.ko"* >/dev/null 2>&1; then
    say "dkms did not build for $KVER by itself; building explicitly"
    in_root dkms autoinstall -k "$KVER"
fi
ls "$ROOT/lib/modules/$KVER/updates/dkms/zfs.ko"* >/dev/null 2>&1 || die "zfs.ko missing for $KVER after dkms"

# Packages the roles install, baked in so converging needs no downloads.
ROLE_PKGS="tinc sanoid prometheus-node-exporter prometheus prometheus-alertmanager mbuffer lz4 pv faketime rsync jq python3-apt cgroup-tools netcat-openbsd less gdisk parted ethtool tcpdump"
say "role packages: $ROLE_PKGS"
# shellcheck disable=SC2086
in_root apt-get install -y --no-install-recommends $ROLE_PKGS
in_root apt-get clean

say "configuring the guest"
echo "LABEL=root / ext4 defaults,noatime 0 1" > "$ROOT/etc/fstab"
echo "smc-lab" > "$ROOT/etc/hostname"
: > "$ROOT/etc/machine-id"; rm -f "$ROOT/var/lib/dbus/machine-id"
rm -f "$ROOT"/etc/ssh/ssh_host_*
cat > "$ROOT/etc/network/interfaces" <<'NET'
auto lo
iface lo inet loopback
auto eth0
iface eth0 inet static
    address 10.0.2.15/24
    gateway 10.0.2.2
source /etc/network/interfaces.d/*
NET
# qemu user networking always gives the guest 10.0.2.15, gateway .2, DNS .3: a static address saves a DHCP
# round (about a minute of a TCG boot on the path to SSH).
echo "nameserver 10.0.2.3" > "$ROOT/etc/resolv.conf"
# First-boot configuration from the kernel command line (the on-prem provisioner sets it):
#   smc.hostname=NAME smc.addr=CIDR smc.key=<ed25519 public key, base64 part>
cat > "$ROOT/usr/local/sbin/smc-lab-boot" <<'BOOT'
#!/bin/sh
set -e
for word in $(cat /proc/cmdline); do
    case "$word" in
        smc.hostname=*) name=${word#smc.hostname=} ;;
        smc.addr=*) addr=${word#smc.addr=} ;;
        smc.key=*) key=${word#smc.key=} ;;
    esac
done
# One ed25519 host key: RSA and ECDSA generation cost about a minute of a TCG boot.
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
if [ -n "$name" ]; then
    echo "$name" > /etc/hostname; hostname "$name"
    grep -q " $name\$" /etc/hosts || echo "127.0.1.1 $name" >> /etc/hosts
fi
if [ -n "$key" ]; then
    install -d -m 0700 /root/.ssh
    echo "ssh-ed25519 $key smc-lab" > /root/.ssh/authorized_keys; chmod 0600 /root/.ssh/authorized_keys
fi
if [ -n "$addr" ]; then
    printf 'auto eth1\niface eth1 inet static\n    address %s\n' "$addr" > /etc/network/interfaces.d/eth1
fi
BOOT
chmod 0755 "$ROOT/usr/local/sbin/smc-lab-boot"
cat > "$ROOT/etc/systemd/system/smc-lab-boot.service" <<'UNIT'
[Unit]
Description=smc lab: hostname, SSH key and private address from the kernel command line
DefaultDependencies=no
# Only the root file system is needed: waiting for local-fs.target (ZFS mounts after the module loads) would
# put this unit's work on the boot's critical path.
After=systemd-remount-fs.service
Before=network-pre.target ssh.service
Wants=network-pre.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/smc-lab-boot
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
UNIT
in_root systemctl enable smc-lab-boot.service ssh.service zfs-import-cache.service zfs-mount.service zfs.target zfs-zed.service
# Quiet and quick boots: nothing here runs until a role asks for it.
in_root systemctl disable prometheus.service prometheus-alertmanager.service prometheus-node-exporter.service tinc.service sanoid.timer \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer || true
in_root systemctl mask systemd-timesyncd.service getty@tty1.service || true
sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin prohibit-password/; s/^#\?UseDNS.*/UseDNS no/' "$ROOT/etc/ssh/sshd_config"
echo "HostKey /etc/ssh/ssh_host_ed25519_key" > "$ROOT/etc/ssh/sshd_config.d/smc-lab-hostkey.conf"
# zfs-load-module.service loads ZFS at boot; systemd-modules-load would load it too and time out under TCG.
# (The storage_host role writes modules-load.d/zfs.conf on converged hosts, as on real ones.)
rm -f "$ROOT/etc/modules-load.d/zfs.conf"
rm -f "$ROOT/usr/sbin/policy-rc.d"
# --- recipe end
cp -L "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"; cp -L "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
cleanup

say "making the disk image"
truncate -s 6G "$WORK/base.raw"
mkfs.ext4 -q -L root -d "$ROOT" "$WORK/base.raw"
qemu-img convert -O qcow2 "$WORK/base.raw" "$WORK/base.qcow2"
rm -f "$WORK/base.raw"; rm -rf "$ROOT"
echo "$RECIPE" > "$WORK/recipe"
mkdir -p "$OUT.tmp"; mv "$WORK/base.qcow2" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/recipe" "$OUT.tmp/"
rm -rf "$OUT" "$WORK"; mv "$OUT.tmp" "$OUT"
# Older recipes' images are replaced, not accumulated.
find "$CACHE" -maxdepth 1 -name 'image-*' ! -name "image-$RECIPE" -exec rm -rf {} + 2>/dev/null || true
say "done: $OUT ($(du -sh "$OUT" | cut -f1))"
echo "$OUT"
