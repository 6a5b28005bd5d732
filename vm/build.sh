#!/usr/bin/env bash
# `make vm`: a Debian 12 disk image with infralab and every peer it uses installed, so
# the labs work offline. debootstrap builds the system; the checkout's committed files go
# to /opt/infralab; the same install script as CI (scripts/install.sh) runs inside.
# Output: vm/out/infralab.img, a BIOS-bootable disk (MBR; partition 1 FAT with SYSLINUX,
# the kernel and initrd; partition 2 the ext4 root), built without loop devices or mounts,
# so it also builds in a container. QEMU boots it as it is; VirtualBox after
# `qemu-img convert -O vdi` (vm/README.md). vm/smoke.sh boots it and checks infralab inside.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-vm/out}
ROOTFS=$OUT/rootfs
IMG=$OUT/infralab.img
SIZE=${SIZE:-8G}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || exec sudo -E bash "$0" "$@"

need=()
for tool in debootstrap:debootstrap mkfs.ext4:e2fsprogs git:git sfdisk:fdisk mkfs.vfat:dosfstools \
            mcopy:mtools syslinux:syslinux; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
if [ ${#need[@]} -gt 0 ]; then
  echo "vm: installing the build tools ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
mkdir -p "$OUT"

cleanup() {
  for m in dev/pts dev sys proc; do
    mountpoint -q "$ROOTFS/$m" && umount -l "$ROOTFS/$m" || true
  done
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
}
trap cleanup EXIT

if [ ! -f "$ROOTFS/.infralab-debootstrap" ]; then
  echo "vm: debootstrap bookworm into $ROOTFS"
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase \
    --include=linux-image-amd64,systemd-sysv,udev,kmod,sudo,ca-certificates,git,make,python3,python3-venv,iproute2,procps,less,nano \
    bookworm "$ROOTFS" "$MIRROR"
  touch "$ROOTFS/.infralab-debootstrap"
fi

echo "vm: the checkout (committed files) to /opt/infralab"
rm -rf "$ROOTFS/opt/infralab"
mkdir -p "$ROOTFS/opt/infralab"
git archive HEAD | tar -x -C "$ROOTFS/opt/infralab"

mount -t proc proc "$ROOTFS/proc"
mount --rbind /sys "$ROOTFS/sys"
mount --rbind /dev "$ROOTFS/dev"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"  # no daemons in the chroot
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
echo "deb $MIRROR bookworm main" > "$ROOTFS/etc/apt/sources.list"

echo "vm: scripts/install.sh inside (apt packages, .venv, no Open vSwitch start)"
# the build machine's CA bundle stands in during the build (pip behind a TLS-inspecting
# proxy needs it); the image keeps its own Debian bundle
bundle="$ROOTFS/etc/ssl/certs/ca-certificates.crt"
cp "$bundle" "$OUT/ca-bundle.orig"
cp /etc/ssl/certs/ca-certificates.crt "$bundle"
chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  INFRALAB_NO_OVS_START=1 bash /opt/infralab/scripts/install.sh
cp "$OUT/ca-bundle.orig" "$bundle"

echo "vm: users, hostname, fstab, console, the smoke-test unit"
echo infralab > "$ROOTFS/etc/hostname"
# the name resolves, as on any Debian install (else sudo warns "unable to resolve host" on
# every call, and a remote command's output is not empty: Cluster Edition takes it for an error)
printf '127.0.0.1\tlocalhost\n127.0.1.1\tinfralab\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  > "$ROOTFS/etc/hosts"
ROOT_UUID=${ROOT_UUID:-6f1e2d3c-0b0a-4c1d-9e8f-1a2b3c4d5e6f}
BOOT_ID=1A2B3C4D  # the FAT volume id, shown as UUID 1A2B-3C4D
printf 'UUID=%s / ext4 defaults 0 1\nUUID=%s-%s /boot/syslinux vfat defaults,nofail 0 2\n' \
  "$ROOT_UUID" "${BOOT_ID:0:4}" "${BOOT_ID:4:4}" > "$ROOTFS/etc/fstab"
mkdir -p "$ROOTFS/boot/syslinux"
chroot "$ROOTFS" bash -c 'id student >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo student;
  echo "student:infralab" | chpasswd; echo "root:infralab" | chpasswd;
  echo "student ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/student;
  chown -R student: /opt/infralab;
  systemctl enable openvswitch-switch >/dev/null 2>&1 || true
  # the peers (nsd, named, unbound, pdns, kea, stund, dnsmasq) run per test or lab inside
  # the emulation; their Debian system services would only hold port 53/67 and memory
  for u in nsd named unbound pdns kea-dhcp4-server kea-dhcp6-server kea-dhcp-ddns-server \
           kea-ctrl-agent stun isc-dhcp-server dnsmasq; do
    systemctl disable "$u.service" >/dev/null 2>&1 || true
  done'
install -m 0644 vm/infralab-smoke.service "$ROOTFS/etc/systemd/system/infralab-smoke.service"
install -D -m 0755 vm/smoke-mode.sh "$ROOTFS/usr/local/lib/infralab/smoke-mode"
install -D -m 0755 vm/kernel-hook.sh "$ROOTFS/etc/kernel/postinst.d/zz-infralab-syslinux"
install -D -m 0755 vm/kernel-hook.sh "$ROOTFS/etc/initramfs/post-update.d/zz-infralab-syslinux"
chroot "$ROOTFS" systemctl enable infralab-smoke.service >/dev/null
cp "$ROOTFS"/boot/vmlinuz-* "$OUT/vmlinuz"
cp "$ROOTFS"/boot/initrd.img-* "$OUT/initrd.img"
cleanup
trap - EXIT

# the disk: 1 MiB gap, partition 1 (FAT, 256 MiB, active) boot, partition 2 root
BOOT_START=2048 BOOT_SECTORS=$((256 * 2048))
ROOT_START=$((BOOT_START + BOOT_SECTORS))
echo "vm: disk image $IMG ($SIZE, sparse): MBR + SYSLINUX, boot and root partitions"
rm -f "$IMG"
truncate -s "$SIZE" "$IMG"
sfdisk -q "$IMG" <<EOT
label: dos
start=$BOOT_START, size=$BOOT_SECTORS, type=e, bootable
start=$ROOT_START, type=83
EOT
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$IMG" bs=440 count=1 conv=notrunc status=none
root_bytes=$(( $(stat -c %s "$IMG") - ROOT_START * 512 ))
mkfs.ext4 -F -q -L infralab -U "$ROOT_UUID" -E offset=$((ROOT_START * 512)) \
  -d "$ROOTFS" "$IMG" "$((root_bytes / 1024))k"
mkfs.vfat -F 16 -n INFRALAB -i "$BOOT_ID" --offset "$BOOT_START" "$IMG" \
  "$((BOOT_SECTORS / 2))" >/dev/null 2>&1  # (FAT16: mtools and SYSLINUX agree on it)
cat > "$OUT/syslinux.cfg" <<EOT
SERIAL 0 115200
PROMPT 0
TIMEOUT 20
DEFAULT infralab
SAY infralab: booting Debian 12 (user student, password infralab)
LABEL infralab
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$ROOT_UUID rw console=tty0 console=ttyS0,115200
EOT
fat="$IMG@@$((BOOT_START * 512))"
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$fat" "$OUT/vmlinuz" "$OUT/initrd.img" "$OUT/syslinux.cfg" ::
syslinux --offset $((BOOT_START * 512)) --install "$IMG"
echo "vm: done: $IMG (boot: vm/README.md; check: make vm-smoke)"
