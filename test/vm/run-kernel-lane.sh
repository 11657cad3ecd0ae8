#!/bin/bash
# The kernel-engine VM lane, as CI runs it: bash test/vm/run-kernel-lane.sh
#
# One VM boot runs every kernel-engine scenario (guest-kernel-engine.sh)
# against a throwaway root sshd on this host; the cross-engine halves that need
# the userspace engine run here, before and after the VM. Exit code: the
# guest's when it failed (124 VM timeout, 125 VM did not run), else 1 when a
# host-side scenario failed, else 0.
# Env: VMLANE_CACHE (kernel + initramfs cache), VM_TIMEOUT (s, default 1800),
#      VMLANE_KEEP=1 keeps the run dir (logs, images) for debugging.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJ=$(cd "$HERE/../.." && pwd)
T0=$SECONDS
RELAY_PORT=2299   # inside the VM; nothing else listens there

# shellcheck source=test/vm/host-sshd.sh
. "$HERE/host-sshd.sh"
# shellcheck source=test/vm/lane-lib.sh
. "$HERE/lane-lib.sh"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/sshvault-lane.XXXXXX")
SSHD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sshvault-lane-sshd.XXXXXX")
chmod 755 "$RUN"   # sshd runs as root here, but keep the share readable like a normal home
LOGDIR=$RUN/logs/host; mkdir -p "$LOGDIR"
RESULTS=$RUN/results-host.txt; : > "$RESULTS"

# What host-side userspace runs of this lane may have left: only things under $RUN.
host_leftovers() {
  awk -v r="$RUN/" 'index($2, r) == 1 {print "mount " $2 " (" $3 ")"}' /proc/mounts
  losetup -n -l -O NAME,BACK-FILE 2>/dev/null | awk -v r="$RUN/" 'index($2, r) == 1 {print "loop " $0}'
  local p
  for p in $(pgrep -x qemu-nbd; pgrep -x nbdfuse; pgrep -x sshfs; pgrep -x rsync); do
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$RUN/" && echo "process $p $(tr '\0' ' ' < "/proc/$p/cmdline")"
  done
  return 0
}

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
  local rc=$?
  sshd_stop
  # Last resort only; a passing run has nothing to clean. By pid and path, never by name alone.
  if [ -n "$(host_leftovers)" ]; then
    echo "[lane] cleaning up after a failed host-side run: $(host_leftovers | tr '\n' ';')" >&2
    local p l
    for p in $(pgrep -x qemu-nbd; pgrep -x nbdfuse; pgrep -x sshfs; pgrep -x rsync); do
      tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$RUN/" && kill -9 "$p" 2>/dev/null
    done
    awk -v r="$RUN/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    for l in $(losetup -n -l -O NAME,BACK-FILE 2>/dev/null | awk -v r="$RUN/" 'index($2, r) == 1 {print $1}'); do losetup -d "$l" 2>/dev/null; done
  fi
  if [ "${VMLANE_KEEP:-0}" = 1 ]; then echo "[lane] kept $RUN" >&2
  elif ! awk -v r="$RUN/" 'index($2, r) == 1 {f=1} END {exit !f}' /proc/mounts; then rm -rf "$RUN"
  else echo "[lane] NOT removing $RUN: something is still mounted under it" >&2; fi
  rm -rf "$SSHD_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "== kernel-engine VM lane: setup"
t=$SECONDS
bash "$HERE/vmlane.sh" setup || { echo "[lane] vmlane setup failed" >&2; exit 125; }
SETUP_S=$((SECONDS - t))

# The guest runs the host's node on the host's dist/: build it when it is missing or older than src/.
if [ ! -f "$PROJ/dist/cli/main.js" ] || [ -n "$(find "$PROJ/src" -name '*.ts' -newer "$PROJ/dist/cli/main.js" | head -1)" ]; then
  echo "[lane] building dist/"
  (cd "$PROJ" && npx tsc -p tsconfig.json) || { echo "[lane] build failed" >&2; exit 1; }
fi

# The guest unpacks this into tmpfs (see guest-kernel-engine.sh): dist/ and the
# production dependencies, as npm resolves them (nested ones come with their parents).
{ (cd "$PROJ" && npm ls --omit=dev --all --parseable 2>/dev/null) || true; } |
  sed -n "s|^$PROJ/\(node_modules/[^/]*\(/[^/]*\)\?\)$|\1|p" | grep -v '^node_modules/[^@][^/]*/' | sort -u > "$RUN/runtime.list"
if [ -s "$RUN/runtime.list" ]; then
  tar -C "$PROJ" -cf "$RUN/runtime.tar" dist -T "$RUN/runtime.list" || rm -f "$RUN/runtime.tar"
fi

sshd_start "$SSHD_DIR" || { echo "[lane] could not start sshd" >&2; exit 125; }
cp "$SSHD_USER_KEY" "$RUN/userkey"; chmod 600 "$RUN/userkey"
# The guest dials 10.0.2.2 directly and 127.0.0.1:RELAY_PORT through the relay; the host dials 127.0.0.1.
sshd_known_hosts "$RUN/known_hosts" 10.0.2.2 127.0.0.1
printf '[127.0.0.1]:%s %s\n' "$RELAY_PORT" "$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub")" >> "$RUN/known_hosts"
# Non-ASCII on purpose: both engines must derive the key from the same bytes.
# The CLI drops one trailing newline; qemu-img takes the file as it is, hence pass.raw.
pw="lane passphrase ü $(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
printf '%s\n' "$pw" > "$RUN/pass"; printf '%s' "$pw" > "$RUN/pass.raw"; chmod 600 "$RUN/pass" "$RUN/pass.raw"
mkdir -p "$RUN/remote"
export SSHVAULT_TEST_PBKDF_ITERATIONS=1000
HREMOTE="ssh://root@127.0.0.1:$SSHD_PORT$RUN/remote"
common=(--size 256M --identity "$RUN/userkey" --known-hosts "$RUN/known_hosts" --passphrase-file "$RUN/pass" --fs ext4)

hclean() { # hclean SCENARIO
  local left; left=$(host_leftovers)
  [ -z "$left" ] && return 0
  fail "$1" "left behind on the host: $(echo "$left" | tr '\n' ';')"; return 1
}

# ---------------------------------------------------------------- before the VM: xu by the userspace engine
echo "== host: userspace-engine vault xu"
xu_make() {
  local s=xu-userspace-init-push
  export XDG_CONFIG_HOME=$RUN/xdg-xu/config XDG_STATE_HOME=$RUN/xdg-xu/state XDG_CACHE_HOME=$RUN/xdg-xu/cache
  make_tree "$RUN/src-xu" 2
  sv xu-init init xu --remote "$HREMOTE/xu" "${common[@]}" --engine userspace --source "$RUN/src-xu" ||
    { fail $s "$(why xu-init 0)"; return; }
  sv xu-push1 push xu || { fail $s "$(why xu-push1 0)"; return; }
  hclean $s || return
  rm -rf "$RUN/src-xu.v1"; cp -a "$RUN/src-xu" "$RUN/src-xu.v1"
  touch "$RUN/xu.ready"
  pass $s
}
(xu_make)

# ---------------------------------------------------------------- the VM
echo "== VM: kernel-engine scenarios"
t=$SECONDS
VM_TIMEOUT=${VM_TIMEOUT:-1800} bash "$HERE/vmlane.sh" run --net --project "$PROJ" --share "$RUN" \
  -e "SV_PORT=$SSHD_PORT" -e "SV_RUN=$RUN" -e "SV_RELAY_PORT=$RELAY_PORT" -- bash test/vm/guest-kernel-engine.sh
GUEST_RC=$?
VM_S=$((SECONDS - t))

# ---------------------------------------------------------------- after the VM: read back with the userspace engine
echo "== host: cross-engine checks"
xu_verify() {
  local s=xu-cross-verify
  [ -f "$RUN/xu.pushed" ] || { fail $s "skipped: the kernel-engine push to xu did not happen"; return; }
  export XDG_CONFIG_HOME=$RUN/xdg-xu/config XDG_STATE_HOME=$RUN/xdg-xu/state XDG_CACHE_HOME=$RUN/xdg-xu/cache
  # --refresh: this machine's catalog cache predates the VM's push
  sv xu-list-refresh list xu --json --refresh || { fail $s "$(why xu-list-refresh 0)"; return; }
  mapfile -t snaps < <(complete_snapshots "$LOGDIR/xu-list-refresh.out")
  [ ${#snaps[@]} = 2 ] || { fail $s "expected 2 complete snapshots, the second by the VM: $(head -c 300 "$LOGDIR/xu-list-refresh.out")"; return; }
  local d
  d=$(independent_check "$RUN/remote/xu/vault.img" "$RUN/pass.raw" "${snaps[0]}" "$RUN/src-xu.v1" "$RUN/check" "$RUN/src-xu") ||
    { fail $s "userspace-written snapshot ${snaps[0]} after the kernel push: $d"; return; }
  d=$(independent_check "$RUN/remote/xu/vault.img" "$RUN/pass.raw" "${snaps[1]}" "$RUN/src-xu" "$RUN/check") ||
    { fail $s "kernel-written snapshot ${snaps[1]}, decrypted by qemu-img: $d"; return; }
  rm -rf "$RUN/restore-xu"
  sv xu-restore restore xu "${snaps[1]}" "$RUN/restore-xu" || { fail $s "userspace restore of the kernel-written snapshot: $(why xu-restore 0)"; return; }
  d=$(compare_trees "$RUN/src-xu" "$(restored_root "$RUN/restore-xu" "$RUN/src-xu")" links) ||
    { fail $s "userspace restore of the kernel-written snapshot differs: $d"; return; }
  hclean $s || return
  pass $s
}
(xu_verify)

xk_userspace() {
  local s=xk-userspace-push-verify
  [ -f "$RUN/xk.ready" ] || { fail $s "skipped: the VM could not make vault xk"; return; }
  rm -rf "$RUN/xdg-xk-host"; cp -a "$RUN/xdg-xk" "$RUN/xdg-xk-host"
  set_config "$RUN/xdg-xk-host/config/sshvault/xk.json" engine userspace
  set_config "$RUN/xdg-xk-host/config/sshvault/xk.json" remote "$HREMOTE/xk"
  export XDG_CONFIG_HOME=$RUN/xdg-xk-host/config XDG_STATE_HOME=$RUN/xdg-xk-host/state XDG_CACHE_HOME=$RUN/xdg-xk-host/cache
  churn_tree "$RUN/src-xk" 1
  sv xk-push2 push xk || { fail $s "userspace push to the kernel-made image: $(why xk-push2 0)"; return; }
  hclean $s || return
  sv xk-list list xk --json || { fail $s "$(why xk-list 0)"; return; }
  mapfile -t snaps < <(complete_snapshots "$LOGDIR/xk-list.out")
  [ ${#snaps[@]} = 2 ] || { fail $s "expected 2 complete snapshots: $(head -c 300 "$LOGDIR/xk-list.out")"; return; }
  local d
  d=$(independent_check "$RUN/remote/xk/vault.img" "$RUN/pass.raw" "${snaps[0]}" "$RUN/src-xk.v1" "$RUN/check" "$RUN/src-xk") ||
    { fail $s "kernel-written snapshot ${snaps[0]}, decrypted by qemu-img: $d"; return; }
  d=$(independent_check "$RUN/remote/xk/vault.img" "$RUN/pass.raw" "${snaps[1]}" "$RUN/src-xk" "$RUN/check") ||
    { fail $s "userspace-written snapshot ${snaps[1]}: $d"; return; }
  rm -rf "$RUN/restore-xk"
  sv xk-restore restore xk "${snaps[0]}" "$RUN/restore-xk" || { fail $s "userspace restore of the kernel-written snapshot: $(why xk-restore 0)"; return; }
  d=$(compare_trees "$RUN/src-xk.v1" "$(restored_root "$RUN/restore-xk" "$RUN/src-xk")" links) ||
    { fail $s "userspace restore of the kernel-written snapshot differs: $d"; return; }
  hclean $s || return
  pass $s
}
(xk_userspace)

# ---------------------------------------------------------------- summary
echo
echo "== kernel-engine VM lane summary"
cat "$RUN/results-guest.txt" "$RESULTS" 2>/dev/null | grep -E '^(PASS|FAIL)' | sed 's/^/  /'
[ -s "$RUN/results-guest.txt" ] || echo "  FAIL guest: no results (VM exit code $GUEST_RC)"
npass=$(cat "$RUN/results-guest.txt" "$RESULTS" 2>/dev/null | grep -c '^PASS')
nfail=$(cat "$RUN/results-guest.txt" "$RESULTS" 2>/dev/null | grep -c '^FAIL')
echo "  $npass passed, $nfail failed; guest exit code $GUEST_RC"
[ -s "$RUN/measure-guest.txt" ] && echo "  kernel engine download: $(cat "$RUN/measure-guest.txt")"
echo "  wall time $((SECONDS - T0)) s (setup $SETUP_S s, VM $VM_S s)"
if [ "$GUEST_RC" != 0 ]; then exit "$GUEST_RC"; fi
[ "$nfail" = 0 ] || exit 1
exit 0
