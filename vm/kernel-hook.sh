#!/bin/sh
# Keeps the boot partition (/boot/syslinux, where SYSLINUX finds /vmlinuz and
# /initrd.img) in step with apt: installed as a kernel postinst.d and an initramfs
# post-update.d hook, both called with the kernel version first.
version="$1"
mountpoint -q /boot/syslinux || exit 0
for f in vmlinuz initrd.img; do
  [ -f "/boot/$f-$version" ] && cp "/boot/$f-$version" "/boot/syslinux/$f.new" \
    && mv "/boot/syslinux/$f.new" "/boot/syslinux/$f"
done
exit 0
