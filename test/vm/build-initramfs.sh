#!/bin/bash
# Build the initramfs of sshvault's VM lane.
#
# Usage: build-initramfs.sh <kernel-tree> <kver> <out.cpio.gz>
#   kernel-tree: where linux-image-<kver>.deb was extracted (dpkg-deb -x) and
#                `depmod -b <kernel-tree> <kver>` was run.
#
# The image holds only busybox and kernel modules. Its /init mounts the host's /
# (9p tag "hostroot", read-only) under a tmpfs overlay, so the guest runs the
# host's own node, sshfs, rsync and cryptsetup; mounts the per-run share (tag
# "vmlane") at /vmlane and again at the host path it has on the host (so paths
# written into configs are valid on both sides); mounts the project (tag
# "project") read-write at its host path; then chroots, runs /vmlane/cmd.sh and
# writes its exit code to /vmlane/rc.
#
# vmlane.sh caches the result keyed by a hash of this file: any edit here
# rebuilds it on the next setup.
set -euo pipefail
KTREE=$(readlink -f "$1"); KVER=$2; OUT=$(readlink -f "$3")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sshvault-initramfs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
R=$WORK/root
mkdir -p "$R"/{bin,sbin,dev,proc,sys,run,tmp,mnt,etc,root,newroot,hostroot,rw,vmlane,lib64,lib/x86_64-linux-gnu}
mkdir -p "$R/usr"; ln -s ../bin "$R/usr/bin"; ln -s ../sbin "$R/usr/sbin"; ln -s ../lib "$R/usr/lib"
cp /bin/busybox "$R/bin/busybox"   # busybox-static: the initramfs has no libc

# Loaded at boot. crc32c-intel and aesni-intel may be missing or built in; skipped then.
MODS="virtio_pci virtio_blk virtio_net virtio-rng dm-mod dm-crypt loop fuse crc32c_generic crc32c-intel ext4 btrfs overlay
      aesni-intel xts algif_skcipher algif_hash 9p 9pnet_virtio"
# Available for on-demand loading (kernel.modprobe -> busybox modprobe): every
# crypto module, so LUKS images with other ciphers open, and every dm target
# (dm-flakey, dm-delay, dm-error are handy for I/O fault injection).
# module file names are plain words
# shellcheck disable=SC2011
ONDEMAND=$(cd "$KTREE/lib/modules/$KVER/kernel" && ls crypto/*.ko arch/x86/crypto/*.ko lib/crypto/*.ko drivers/md/dm-*.ko 2>/dev/null |
  xargs -n1 basename | sed 's/\.ko$//')
for m in $MODS $ONDEMAND; do
  deps=$(modprobe -d "$KTREE" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}') ||
    { echo "note: module $m not available in $KVER (built-in or missing), skipped" >&2; continue; }
  for f in $deps; do install -D -m644 "$f" "$R${f#"$KTREE"}"; done
done
cp "$KTREE/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KVER/"
depmod -b "$R" "$KVER"   # modules.dep for the subset actually copied
echo "$MODS" | tr -s ' \n' ' ' > "$R/etc/vmlane-modules"

cat > "$R/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo /bin/modprobe > /proc/sys/kernel/modprobe
for m in $(cat /etc/vmlane-modules); do modprobe -q $m 2>/dev/null; done
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then   # qemu -nic user: 10.0.2.2 is the host's 127.0.0.1
  ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
fi
echo "VMTEST_BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
finish() { echo "VMTEST_RC=$1 uptime=$(cut -d' ' -f1 /proc/uptime)"; sync; poweroff -f; }

O="trans=virtio,version=9p2000.L,msize=524288"
mount -t 9p -o ro,$O,cache=loose hostroot /hostroot || finish 98
mount -t tmpfs -o size=75% tmpfs /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/hostroot,upperdir=/rw/upper,workdir=/rw/work /newroot || finish 97
N=/newroot
mount -t proc proc $N/proc; mount -t sysfs sys $N/sys; mount -t devtmpfs dev $N/dev
mkdir -p $N/dev/pts $N/dev/shm; mount -t devpts devpts $N/dev/pts; mount -t tmpfs tmpfs $N/dev/shm
# devtmpfs has no /dev/fd (udev makes it): bash process substitution needs it
ln -sf /proc/self/fd $N/dev/fd; ln -sf /proc/self/fd/0 $N/dev/stdin; ln -sf /proc/self/fd/1 $N/dev/stdout; ln -sf /proc/self/fd/2 $N/dev/stderr
mount -t tmpfs tmpfs $N/run; mkdir -p $N/run/cryptsetup $N/run/lock $N/run/sshd
mount -t tmpfs tmpfs $N/tmp
mkdir -p $N/lib/modules && mount --bind /lib/modules $N/lib/modules
# cache=mmap, not loose: the host writes into these while the guest runs
mkdir -p $N/vmlane && mount -t 9p -o $O,cache=mmap vmlane $N/vmlane || finish 96
# After the tmpfs on /tmp, so host temp dirs under /tmp are not hidden by it.
S=$(cat $N/vmlane/share_path 2>/dev/null)
if [ -n "$S" ] && [ "$S" != /vmlane ]; then mkdir -p "$N$S" && mount --bind $N/vmlane "$N$S" || finish 94; fi
P=$(cat $N/vmlane/project_path 2>/dev/null)
if [ -n "$P" ]; then mkdir -p "$N$P" && mount -t 9p -o $O,cache=mmap project "$N$P" || finish 95; fi
echo "VMTEST_ROOT_READY uptime=$(cut -d' ' -f1 /proc/uptime)"
chroot $N /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /bin/sh -c 'cd "${1:-/}" && exec /bin/bash /vmlane/cmd.sh' sh "$P" </dev/console >/dev/console 2>&1
rc=$?
echo $rc > $N/vmlane/rc
cd /
[ -n "$P" ] && umount "$N$P" 2>/dev/null
[ -n "$S" ] && umount "$N$S" 2>/dev/null
umount $N/vmlane 2>/dev/null
finish $rc
EOF
chmod 755 "$R/init"
# sorted, so the same inputs give the same archive
(cd "$R" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 > "$OUT"
echo "built $OUT ($(du -h "$OUT" | cut -f1), $(du -sh "$R" | cut -f1) unpacked)"
