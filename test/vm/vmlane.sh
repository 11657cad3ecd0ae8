#!/bin/bash
# vmlane.sh - run a command inside a throwaway qemu VM with a real Debian kernel
# (dm-crypt, loop, fuse, ext4, btrfs), for hosts without device-mapper.
#
# The guest's root is the HOST's / over virtio-9p (read-only) under a tmpfs
# overlay, so node, rsync, sshfs, cryptsetup are exactly the host's. Only the
# kernel (extracted from linux-image-amd64, never installed) and a small
# busybox+modules initramfs are extra, cached outside the clone.
#
#   vmlane.sh setup                       apt packages, kernel, initramfs (cached)
#   vmlane.sh run [opts] -- CMD [ARGS..]  boot, run CMD as root, power off; exit = CMD's
#        --project DIR  share DIR read-write at the same path and cd into it (default: $PWD)
#        --no-project   share no project dir (cwd = /)
#        --share DIR    DIR read-write at /vmlane and at its own path (default: a fresh temp dir)
#        --net          qemu user-net (guest 10.0.2.15; the host's 127.0.0.1 is 10.0.2.2)
#        -e NAME=VALUE  export a variable for CMD (the guest starts from an empty environment)
#   vmlane.sh selftest                    LUKS1 + sshfs + losetup + dm-crypt + ext4 + rsync
#                                         roundtrip against a throwaway host sshd, checked on the host
# Env: VMLANE_CACHE (default /var/cache/sshvault-vmlane), VM_MEM (MiB, 4096), VM_SMP (2),
#      VM_TIMEOUT (s, 1800), VM_ACCEL (tcg|kvm, default tcg), VM_APPEND (extra kernel args),
#      VM_FAST_SSH (1: guest OpenSSH prefers curve25519 kex; 0 keeps the defaults)
# Exit codes of `run`: the command's, 124 timeout, 125 VM or setup failure (no rc written).
# qemu options are comma lists by design:
# shellcheck disable=SC2054
set -euo pipefail
CACHE=${VMLANE_CACHE:-/var/cache/sshvault-vmlane}
MEM=${VM_MEM:-4096}; SMP=${VM_SMP:-2}; TIMEOUT=${VM_TIMEOUT:-1800}; ACCEL=${VM_ACCEL:-tcg}
HERE=$(cd "$(dirname "$0")" && pwd)
log() { echo "[vmlane] $*" >&2; }

# Host packages. The guest runs the host's binaries, so what the guest needs
# (sshfs, cryptsetup, rsync, node's tools) must be installed here as well.
PACKAGES=(qemu-system-x86 qemu-utils busybox-static kmod cpio xz-utils zstd e2fsprogs cryptsetup-bin
  rsync sshfs openssh-client openssh-server fuse3 procps util-linux mount nbdfuse)

# ---------------------------------------------------------------- setup
extract_vmlinux() { # bzImage -> uncompressed ELF vmlinux, booted via PVH: skips the
  local bz=$1 out=$2 ss off len start   # in-guest decompression, about 8 s under TCG
  ss=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' '); [ "$ss" = 0 ] && ss=4
  off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
  len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
  start=$(( (ss + 1) * 512 + off ))
  payload() { dd if="$bz" bs=64K iflag=skip_bytes,count_bytes skip="$start" count="$1" status=none; }
  case $(payload 4 | od -An -tx1 | tr -d ' ') in
    fd377a58) payload "$len" | xz -dc --single-stream > "$out" ;;
    28b52ffd) payload "$len" | zstd -dcq > "$out" ;;
    1f8b08*)  payload "$len" | gzip -dc > "$out" ;;
    *) log "unknown kernel payload compression"; return 1 ;;
  esac
  [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# Debian 12 ships nbdfuse inside libnbd-bin; later releases have a package of that name.
resolve_pkg() {
  if [ "$1" = nbdfuse ] && ! apt-cache show nbdfuse >/dev/null 2>&1; then echo libnbd-bin; else echo "$1"; fi
}

kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }

do_setup() {
  local need=() p updated=0
  for p in "${PACKAGES[@]}"; do
    if [ "$p" = nbdfuse ]; then command -v nbdfuse >/dev/null && continue; else installed "$p" && continue; fi
    need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    # A fresh machine's package lists are empty or stale: always update first.
    log "apt-get update; apt-get install ${need[*]}"
    apt-get update -q >/dev/null; updated=1
    local pkgs=(); for p in "${need[@]}"; do pkgs+=("$(resolve_pkg "$p")"); done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
  mkdir -p "$CACHE"
  # Two lanes on one machine share the cache: one builds, the other waits.
  exec 9>"$CACHE/.lock"; flock 9
  local kpkg kver key
  kpkg=$(kernel_pkg)
  if [ -z "$kpkg" ] && [ $updated = 0 ]; then apt-get update -q >/dev/null; kpkg=$(kernel_pkg); fi
  [ -n "$kpkg" ] || { log "cannot resolve linux-image-amd64 to a kernel package"; return 125; }
  kver=${kpkg#linux-image-}
  # An edit of the initramfs builder must rebuild the initramfs: the hash is part of its name.
  key=$kver-$(sha256sum "$HERE/build-initramfs.sh" | cut -c1-12)
  if [ ! -s "$CACHE/vmlinux-$kver" ] || [ ! -s "$CACHE/initrd-$key.cpio.gz" ]; then
    local tmp; tmp=$(mktemp -d "$CACHE/build.XXXXXX")
    log "fetching $kpkg (extracted only, nothing is installed on the host)"
    (cd "$tmp" && apt-get download -q "$kpkg" >/dev/null 2>&1) ||
      { apt-get update -q >/dev/null; (cd "$tmp" && apt-get download -q "$kpkg" >/dev/null); }
    mkdir "$tmp/ktree"
    dpkg-deb -x "$tmp/$kpkg"_*.deb "$tmp/ktree"
    depmod -b "$tmp/ktree" "$kver"
    if [ ! -s "$CACHE/vmlinux-$kver" ]; then
      extract_vmlinux "$tmp/ktree/boot/vmlinuz-$kver" "$tmp/vmlinux"
      mv "$tmp/vmlinux" "$CACHE/vmlinux-$kver"
    fi
    bash "$HERE/build-initramfs.sh" "$tmp/ktree" "$kver" "$tmp/initrd.cpio.gz" >&2
    mv "$tmp/initrd.cpio.gz" "$CACHE/initrd-$key.cpio.gz"
    rm -rf "$tmp"   # ~400 MB of modules, not needed once the initramfs holds its subset
  fi
  # Older kernels and initramfs builds would otherwise pile up in a CI cache.
  find "$CACHE" -maxdepth 1 \( -name 'vmlinux-*' ! -name "vmlinux-$kver" -o -name 'initrd-*' ! -name "initrd-$key.cpio.gz" \
    -o -name 'build.*' \) -exec rm -rf {} +
  ln -sfn "vmlinux-$kver" "$CACHE/vmlinux"; ln -sfn "initrd-$key.cpio.gz" "$CACHE/initrd.cpio.gz"
  flock -u 9
  log "ready: $CACHE/vmlinux ($kver), $CACHE/initrd.cpio.gz ($key)"
}

# ---------------------------------------------------------------- run
QEMU_PID=""
do_run() {
  local project=$PWD share="" net=0 envs=()
  while [ $# -gt 0 ]; do
    case $1 in
      -e|--env) envs+=("$2"); shift 2 ;;
      --project) project=$(readlink -f "$2"); shift 2 ;;
      --no-project) project=""; shift ;;
      --share) share=$(readlink -f "$2"); shift 2 ;;
      --net) net=1; shift ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [ $# -gt 0 ] || { log "run: no command given"; return 125; }
  if [ ! -s "$CACHE/vmlinux" ] || [ ! -s "$CACHE/initrd.cpio.gz" ]; then log "run '$0 setup' first"; return 125; fi
  local own_share=0
  if [ -z "$share" ]; then share=$(mktemp -d "${TMPDIR:-/tmp}/vmlane-run.XXXXXX"); own_share=1; fi
  rm -f "$share/rc"
  printf '%s\n' "$project" > "$share/project_path"
  printf '%s\n' "$share" > "$share/share_path"
  { if [ "${VM_FAST_SSH:-1}" = 1 ]; then  # sntrup761 kex costs ~3 s per OpenSSH connection under TCG
      # shellcheck disable=SC2028 # the escapes are for the guest's printf
      echo "mkdir -p /etc/ssh/ssh_config.d && printf 'Host *\\n  KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org\\n' > /etc/ssh/ssh_config.d/00-vmlane.conf"
    fi
    for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
    printf 'exec'; printf ' %q' "$@"; printf '\n'; } > "$share/cmd.sh"
  # /dev/kvm exists on some CI machines but cannot run stock kernels there: TCG unless asked.
  local accel=(-accel tcg,thread=multi -cpu max)
  [ "$ACCEL" = kvm ] && accel=(-enable-kvm -cpu host)
  local args=("${accel[@]}" -smp "$SMP" -m "$MEM" -nodefaults -no-reboot -display none
    -serial stdio -monitor none
    -kernel "$CACHE/vmlinux" -initrd "$CACHE/initrd.cpio.gz"
    -append "console=ttyS0 quiet panic=-1 mitigations=off cryptomgr.notests ${VM_APPEND:-}"
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
    -virtfs local,path="$share",mount_tag=vmlane,security_model=none,multidevs=remap)
  [ -n "$project" ] && args+=(-virtfs local,path="$project",mount_tag=project,security_model=none,multidevs=remap)
  [ $net = 1 ] && args+=(-nic user,model=virtio-net-pci)
  local t0=$SECONDS qrc=0
  # In the background so the trap can end qemu (by pid) when this script is interrupted.
  trap '[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null; exit 130' INT TERM HUP
  timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${args[@]}" < /dev/null > >(tr -d '\r') &
  QEMU_PID=$!
  wait "$QEMU_PID" || qrc=$?
  QEMU_PID=""
  trap - INT TERM HUP
  local rc=125
  if [ -s "$share/rc" ]; then rc=$(cat "$share/rc"); elif [ $qrc = 124 ] || [ $qrc = 137 ]; then rc=124; fi
  log "VM finished in $((SECONDS - t0)) s, command exit code $rc"
  [ $own_share = 1 ] && rm -rf "$share"
  return "$rc"
}

# ---------------------------------------------------------------- selftest
# Needs no sshvault code: proves kernel, initramfs, 9p, user-net, sshfs and
# dm-crypt work, and that what the guest wrote decrypts on the host.
do_selftest() {
  # global, not local: the EXIT trap runs after this function has returned
  SELFTEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/vmlane-selftest.XXXXXX"); local d=$SELFTEST_DIR
  # shellcheck source=test/vm/host-sshd.sh
  . "$HERE/host-sshd.sh"
  trap 'sshd_stop; rm -rf "$SELFTEST_DIR"' EXIT
  mkdir -p "$d/remote" "$d/share/src/sub"
  # ASCII key: qemu-img's luks driver only accepts UTF-8 secrets (binary key files fail)
  printf '%s' "$(head -c 32 /dev/urandom | base64 -w0)" > "$d/share/key"
  truncate -s 64M "$d/remote/vault.img"
  cryptsetup luksFormat --type luks1 --batch-mode --key-file "$d/share/key" \
    --pbkdf-force-iterations 1000 "$d/remote/vault.img"     # formatting needs no device-mapper
  echo "hello $(date)" > "$d/share/src/a.txt"; head -c 5M /dev/urandom > "$d/share/src/sub/b.bin"
  (cd "$d/share/src" && find . -type f | sort | xargs sha256sum) > "$d/src.sums"
  sshd_start "$d/sshd"
  cp "$SSHD_USER_KEY" "$d/share/userkey"; chmod 600 "$d/share/userkey"
  sshd_known_hosts "$d/share/known_hosts" 10.0.2.2
  cat > "$d/share/t.sh" <<EOF
set -e
t() { echo "T \$(cut -d' ' -f1 /proc/uptime) \$*"; }
t guest-cmd-start
mkdir -p /mnt/remote /mnt/vault
o="-p $SSHD_PORT -o IdentityFile=/vmlane/userkey,UserKnownHostsFile=/vmlane/known_hosts,StrictHostKeyChecking=yes,LogLevel=ERROR"
sshfs \$o root@10.0.2.2:$d/remote /mnt/remote; t sshfs-mounted
LOOP=\$(losetup --find --show /mnt/remote/vault.img); t "losetup \$LOOP"
cryptsetup open --type luks1 --key-file /vmlane/key "\$LOOP" vault; t luks-opened
mkfs.ext4 -q -O ^has_journal /dev/mapper/vault; t mkfs.ext4
mount -t ext4 /dev/mapper/vault /mnt/vault
rsync -a /vmlane/src/ /mnt/vault/backup/; t rsynced
umount /mnt/vault; cryptsetup close vault; losetup -d "\$LOOP"; t closed
fusermount3 -u /mnt/remote; t sshfs-unmounted
EOF
  local rc=0 t0=$SECONDS
  do_run --net --share "$d/share" --no-project -- /bin/sh /vmlane/t.sh || rc=$?
  sshd_stop
  [ $rc = 0 ] || { log "selftest FAILED: guest part exited $rc"; return "$rc"; }
  qemu-img convert --object secret,id=s0,file="$d/share/key" \
    --image-opts driver=luks,key-secret=s0,file.filename="$d/remote/vault.img" -O raw "$d/plain.raw"
  mkdir -p "$d/restore"
  debugfs -R "rdump /backup $d/restore" "$d/plain.raw" >/dev/null 2>&1
  if (cd "$d/restore/backup" && find . -type f | sort | xargs sha256sum) | diff - "$d/src.sums"; then
    log "selftest OK in $((SECONDS - t0)) s: data written through sshfs + dm-crypt in the VM decrypts on the host"
  else
    log "selftest FAILED: content mismatch"; return 1
  fi
}

case ${1:-} in
  setup) shift; do_setup "$@" ;;
  run) shift; do_run "$@" ;;
  selftest) shift; do_setup; do_selftest "$@" ;;
  *) sed -n '2,24p' "$0"; exit 2 ;;
esac
