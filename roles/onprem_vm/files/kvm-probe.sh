#!/bin/sh
# Print "kvm" if a KVM guest really runs on this machine, else "qemu" (software emulation).
# /dev/kvm opening is not enough: on some nested hosts the guest never leaves the kernel
# decompressor, or "-cpu host" aborts. Boot the given kernel for a few seconds and look for
# its first console line.
kernel=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ -n "$kernel" ] && [ -r "$kernel" ] && [ -w /dev/kvm ]; then
    timeout 25 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nodefaults -display none -no-reboot \
        -kernel "$kernel" -append "console=ttyS0 panic=-1" -serial "file:$out" >/dev/null 2>&1
    if grep -q "Linux version" "$out"; then echo kvm; exit 0; fi
fi
echo qemu
