#!/bin/bash
# Runs inside the lane's VM as root (a real kernel with device-mapper): drives
# the built CLI with the kernel LUKS engine against the host's sshd, reached as
# 10.0.2.2. Started by run-kernel-lane.sh, which provides in the environment:
#   SV_PORT   host sshd port          SV_RUN  shared run dir (same path as on the host)
#   SV_RELAY_PORT  local port for cut-relay.mjs
# and in SV_RUN: userkey, known_hosts, pass (passphrase), remote/ (served by sshd),
# runtime.tar (dist/ and the production node_modules), xu.ready + xdg-xu/ when
# the host made the userspace-engine vault "xu".
# Prints PASS/FAIL per scenario (also into SV_RUN/results-guest.txt); exit 1 if any failed.
set -uo pipefail
PROJ=$(cd "$(dirname "$0")/../.." && pwd)
: "${SV_PORT:?}" "${SV_RUN:?}" "${SV_RELAY_PORT:=2299}"
RESULTS=$SV_RUN/results-guest.txt
LOGDIR=$SV_RUN/logs/guest; mkdir -p "$LOGDIR"; : > "$RESULTS"
# shellcheck source=test/vm/lane-lib.sh
. "$PROJ/test/vm/lane-lib.sh"
G=/tmp/sv   # the VM's tmpfs: trees only this VM needs
mkdir -p "$G"
export SSHVAULT_TEST_PBKDF_ITERATIONS=1000   # the default PBKDF2 count takes minutes under TCG
export XDG_CONFIG_HOME=$G/config XDG_STATE_HOME=$G/state XDG_CACHE_HOME=$G/cache
KEY=$SV_RUN/userkey KH=$SV_RUN/known_hosts PASS=$SV_RUN/pass
REMOTE="ssh://root@10.0.2.2:$SV_PORT$SV_RUN/remote"
common=(--size 256M --identity "$KEY" --known-hosts "$KH" --passphrase-file "$PASS" --fs ext4)
T0=$SECONDS

# The link-cut scenarios make the kernel log I/O errors by the hundred: keep
# them off the console (and so off CI's log), saved in dmesg.txt at the end.
dmesg -n 1 2>/dev/null

# Under TCG the CLI's start-up is module compilation plus file lookups, and
# each lookup over 9p costs milliseconds: measured 13-30 s per command with
# node_modules on the 9p share, 7 s from tmpfs. So the host's dist/ and
# production node_modules are unpacked into tmpfs and bound over the project's
# own paths; bin/sshvault and every path stay what they are on the host.
if [ -s "$SV_RUN/runtime.tar" ]; then
  t=$SECONDS
  mkdir -p /tmp/runtime && tar -C /tmp/runtime -xf "$SV_RUN/runtime.tar" &&
    mount --bind /tmp/runtime/dist "$PROJ/dist" && mount --bind /tmp/runtime/node_modules "$PROJ/node_modules" &&
    note "CLI runtime (dist + production node_modules) in tmpfs in $((SECONDS - t)) s"
fi

# After a failure has been recorded: so the next scenario starts clean and
# fails, if at all, for its own reasons. Everything in this VM is the lane's.
force_clean() {
  local p m
  for p in $(pgrep -x rsync; pgrep -x sshfs); do kill -9 "$p" 2>/dev/null; done
  awk '$1 ~ /^\/dev\/(mapper|loop)/ {print $2}' /proc/mounts | while read -r m; do umount -l "$m"; done
  for m in /dev/mapper/sshvault-*; do [ -e "$m" ] && cryptsetup close "${m##*/}"; done
  awk '$3 ~ /^fuse(\.|$|blk)/ {print $2}' /proc/mounts | while read -r m; do umount -l "$m"; done
  losetup -D
  note "force-cleaned; left now: $(leftovers | tr '\n' ';')"
}

need_clean() { # need_clean SCENARIO [keep]: fails it when anything is left behind
  local left; left=$(leftovers)
  [ -z "$left" ] && return 0
  [ "${2:-}" = keep ] || fail "$1" "left behind: $(echo "$left" | tr '\n' ';')"
  force_clean
  return 1
}

# ---------------------------------------------------------------- doctor
if sv doctor doctor --json && [ "$(json "$LOGDIR/doctor.out" d.engine)" = kernel ]; then
  pass doctor
  note "doctor: $(json "$LOGDIR/doctor.out" d.reason)"
else
  fail doctor "$(why doctor 0), engine '$(json "$LOGDIR/doctor.out" d.engine 2>/dev/null)'"
fi

# ---------------------------------------------------------------- init, push, change, push
SRC=$G/src; make_tree "$SRC" 2
ok_init=0
if sv init init kv --remote "$REMOTE/kv" "${common[@]}" --engine kernel --source "$SRC"; then
  magic=$(head -c 8 "$SV_RUN/remote/kv/vault.img" | od -An -tx1 | tr -d ' \n')
  if [ "$magic" != 4c554b53babe0001 ]; then fail init "image does not start with a LUKS1 header ($magic)"
  elif need_clean init; then pass init; ok_init=1; fi
else fail init "$(why init 0)"; fi

ok_push=0
if [ $ok_init = 1 ]; then
  if sv push1 push kv && need_clean push1; then pass push1; else [ "$SV_RC" = 0 ] || fail push1 "$(why push1 0)"; fi
  churn_tree "$SRC" 1
  if sv push2 push kv && need_clean push2; then pass push2; ok_push=1; else [ "$SV_RC" = 0 ] || fail push2 "$(why push2 0)"; fi
else
  fail push1 "skipped: init failed"; fail push2 "skipped: init failed"
fi

# ---------------------------------------------------------------- list, stats, restore
if [ $ok_push = 1 ]; then
  if sv list list kv --json; then
    n=$(json "$LOGDIR/list.out" 'd.filter(s=>s.complete).length')
    sorted=$(json "$LOGDIR/list.out" 'd.map(s=>s.name).join() === d.map(s=>s.name).sort().join()')
    files=$(json "$LOGDIR/list.out" 'd.every(s=>s.files>0 && s.bytes>0 && !isNaN(Date.parse(s.time)))')
    if [ "$n" = 2 ] && [ "$sorted" = true ] && [ "$files" = true ]; then pass list
    else fail list "expected 2 complete snapshots, oldest first, with files/bytes/time: $(head -c 400 "$LOGDIR/list.out")"; fi
  else fail list "$(why list 0)"; fi

  if sv stats stats kv --json; then
    # push2 added a 1 MiB file and appended to one: rsync's changed bytes are at least that.
    chk=$(json "$LOGDIR/stats.out" '(() => { const p = d.runs.filter(r => r.command === "push" && r.ok);
      if (p.length !== 2) return "expected 2 ok pushes, got " + p.length;
      const last = p[1], names = last.phases.map(x => x.name);
      for (const n of ["connect","open","sync","close"]) if (!names.includes(n)) return "phase " + n + " missing: " + names;
      const up = last.phases.reduce((a, x) => a + x.upBytes, 0), down = last.phases.reduce((a, x) => a + x.downBytes, 0);
      if (up !== last.upBytes || down !== last.downBytes) return "upBytes/downBytes are not the sums of the phases";
      if (!(last.changedBytes >= 1048576)) return "changedBytes " + last.changedBytes + " < the 1 MiB added";
      if (!(last.upBytes > last.changedBytes)) return "upBytes " + last.upBytes + " <= changedBytes " + last.changedBytes + " (random data cannot compress)";
      if (!(last.cache && last.cache.hitBytes > 0)) return "push2 read nothing from the block cache: " + JSON.stringify(last.cache);
      return "ok"; })()')
    if [ "$chk" = ok ]; then pass stats; else fail stats "$chk"; fi
    # What the kernel engine downloads: the first push after init, and the second, with the block cache warm.
    json "$LOGDIR/stats.out" '(() => { const p = d.runs.filter(r => r.command === "push" && r.ok);
      const mb = (n) => (n / 1048576).toFixed(2) + " MiB", c = (r) => r.cache ? ", cache " + mb(r.cache.hitBytes) + " hit / " + mb(r.cache.missBytes) + " fetched" : "";
      return p.map((r, i) => "push" + (i + 1) + " downloaded " + mb(r.downBytes) + c(r)).join("; "); })()' > "$SV_RUN/measure-guest.txt"
    note "kernel engine: $(cat "$SV_RUN/measure-guest.txt")"
  else fail stats "$(why stats 0)"; fi

  rm -rf "$G/restore"
  if sv restore restore kv latest "$G/restore"; then
    if d=$(compare_trees "$SRC" "$(restored_root "$G/restore" "$SRC")" links); then need_clean restore && pass restore
    else fail restore "restored tree differs from the source: $d"; fi
  else fail restore "$(why restore 0)"; fi
else
  for s in list stats restore; do fail $s "skipped: push failed"; done
fi

# ---------------------------------------------------------------- btrfs on the kernel engine
# A btrfs vault through dm-crypt: two pushes, both listed complete, and a
# restore equal to the source.
btrfs_scenario() {
  local s=btrfs src=$G/bsrc step
  make_tree "$src" 3
  for step in "init init kb --remote $REMOTE/kb --size 256M --identity $KEY --known-hosts $KH --passphrase-file $PASS --fs btrfs --engine kernel --source $src" \
              "push1 push kb" "churn" "push2 push kb" "list list kb --json" "restore restore kb latest $G/brestore"; do
    if [ "$step" = churn ]; then churn_tree "$src" 1; continue; fi
    # shellcheck disable=SC2086
    sv "btrfs-${step%% *}" ${step#* } || { fail $s "${step%% *}: $(why "btrfs-${step%% *}" 0)"; need_clean $s keep; return; }
  done
  local n; n=$(json "$LOGDIR/btrfs-list.out" 'd.filter(s=>s.complete).length')
  [ "$n" = 2 ] || { fail $s "expected 2 complete snapshots, got $n"; return; }
  local d; d=$(compare_trees "$src" "$(restored_root "$G/brestore" "$src")" links) || { fail $s "restored tree differs: $d"; return; }
  need_clean $s && pass $s
}
btrfs_scenario

# ---------------------------------------------------------------- link cut
# A separate vault reached through the relay, so the cut hits only its connection.
node "$PROJ/test/vm/cut-relay.mjs" "$SV_RELAY_PORT" "10.0.2.2:$SV_PORT" "$G/relay.ctl" > "$LOGDIR/relay.log" 2>&1 &
RELAY_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$SV_RELAY_PORT") 2>/dev/null && break; sleep 0.2; done
CSRC=$G/src-cut; make_tree "$CSRC" 1
: > "$G/relay.ctl"
# Cut when a push like kv's last one has finished its connect and open phases, plus
# 1 MiB: inside the transfer, as each cut push has 8 MiB of new random data.
limit=$( [ -s "$LOGDIR/stats.out" ] && json "$LOGDIR/stats.out" \
  'd.runs.filter(r=>r.command==="push").pop().phases.filter(p=>p.name==="connect"||p.name==="open").reduce((a,p)=>a+p.upBytes,0)' 2>/dev/null)
[[ "$limit" =~ ^[0-9]+$ ]] || limit=65536
limit=$((limit + 1048576))
cut_complete=0
if sv cut-init init cut --remote "ssh://root@127.0.0.1:$SV_RELAY_PORT$SV_RUN/remote/cut" "${common[@]}" --engine kernel --source "$CSRC"; then
  if sv cut-push1 push cut; then cut_complete=1; else fail linkcut-reset "first push of vault 'cut': $(why cut-push1 0)"; fi
else
  fail linkcut-reset "init of vault 'cut' through the relay: $(why cut-init 0)"
fi

linkcut() { # linkcut SCENARIO MODE
  local s=$1 mode=$2
  head -c 8M /dev/urandom > "$CSRC/docs/cut-$mode.bin"
  echo "$limit $mode" > "$G/relay.ctl"
  local t0=$SECONDS
  sv "$s-push" push cut; local rc=$SV_RC took=$((SECONDS - t0))
  : > "$G/relay.ctl"
  if [ "$rc" != 4 ]; then fail "$s" "push through the cut link: $(why "$s-push" 4)"; return; fi
  grep -q "cut: $mode" "$LOGDIR/relay.log" || { fail "$s" "exit 4 but the relay never cut ($mode)"; return; }
  need_clean "$s" || return
  # The interrupted snapshot must not be listed complete; the next push completes it.
  sv "$s-list" list cut --json || { fail "$s" "list after the cut: $(why "$s-list" 0)"; return; }
  [ "$(complete_snapshots "$LOGDIR/$s-list.out" | grep -c .)" = "$cut_complete" ] ||
    { fail "$s" "complete snapshots changed by the failed push: $(head -c 300 "$LOGDIR/$s-list.out")"; return; }
  sv "$s-push2" push cut || { fail "$s" "push after the link came back: $(why "$s-push2" 0)"; return; }
  cut_complete=$((cut_complete + 1))
  need_clean "$s" || return
  rm -rf "$G/restore-cut"
  sv "$s-restore" restore cut latest "$G/restore-cut" || { fail "$s" "restore after the cut: $(why "$s-restore" 0)"; return; }
  local d
  d=$(compare_trees "$CSRC" "$(restored_root "$G/restore-cut" "$CSRC")" links) || { fail "$s" "restore after the cut differs: $d"; return; }
  pass "$s"
  note "$s: the cut push exited 4 after $took s; $(grep 'cut:' "$LOGDIR/relay.log" | tail -1)"
}
if [ $cut_complete = 1 ]; then
  linkcut linkcut-reset reset
  linkcut linkcut-silent silent   # only ssh2's keepalive can notice this one
else
  fail linkcut-silent "skipped: vault 'cut' could not be set up"
fi
kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null

# ---------------------------------------------------------------- recover after SIGKILL
real_rsync() { # pid of a running rsync that is not a dry run
  local p
  for p in $(pgrep -x rsync); do
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- '--dry-run' || { echo "$p"; return 0; }
  done
  return 1
}
recover_after_kill() {
  local s=recover-after-kill9
  [ $ok_push = 1 ] || { fail $s "skipped: push failed"; return; }
  # Big enough that rsync runs for seconds even though its writes land in the page cache first.
  head -c 48M /dev/urandom > "$SRC/docs/kill-me.bin"
  "$PROJ/bin/sshvault" push kv > "$LOGDIR/kill-push.out" 2> "$LOGDIR/kill-push.err" &
  local pid=$! rs=""
  for _ in $(seq 1500); do rs=$(real_rsync) && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  sleep 0.5
  if [ -z "$rs" ] || ! kill -0 "$rs" 2>/dev/null || ! kill -0 $pid 2>/dev/null; then
    kill -0 $pid 2>/dev/null && { wait $pid; local r=$?; }
    fail $s "the push was not in its rsync when it was to be killed (push exit ${r:-?}): $(tail -c 300 "$LOGDIR/kill-push.err")"; return
  fi
  kill -9 $pid; wait $pid 2>/dev/null
  sleep 1
  local left; left=$(leftovers)
  note "killed push $pid during rsync; left behind: $(echo "$left" | tr '\n' ';')"
  # Nothing left would mean nothing was tested.
  echo "$left" | grep -q '^dm mapping' || { fail $s "no dm-crypt mapping left after SIGKILL, so recover was not exercised: $left"; return; }
  sv recover recover kv || { fail $s "$(why recover 0)"; return; }
  # Left over after recover is a failure, but go on: whether push then works is worth knowing too.
  local after; after=$(leftovers | tr '\n' ';')
  [ -z "$after" ] || { note "recover left: $after (cleaned by the test, continuing)"; need_clean $s keep; }
  sv kill-push2 push kv || { fail $s "push after recover: $(why kill-push2 0)${after:+; recover had left: $after}"; return; }
  need_clean $s || return
  rm -rf "$G/restore-kill"
  sv kill-restore restore kv latest "$G/restore-kill" || { fail $s "restore after recover: $(why kill-restore 0)"; return; }
  local d
  d=$(compare_trees "$SRC" "$(restored_root "$G/restore-kill" "$SRC")" links) || { fail $s "restore after recover differs: $d"; return; }
  [ -z "$after" ] || { fail $s "recover exited 0 but left behind: $after (push and restore afterwards worked)"; return; }
  pass $s
}
recover_after_kill

# ---------------------------------------------------------------- cross-engine, VM side
# xu: made on the host by the userspace engine. This machine takes over its
# config and state, as a user copying them to a laptop with dm-crypt would.
# The host checks the result after the VM is gone.
xu_kernel_push() {
  local s=xu-kernel-push
  [ -f "$SV_RUN/xu.ready" ] || { fail $s "skipped: the host could not make vault xu"; return; }
  rm -rf "$G/xdg-xu"; cp -a "$SV_RUN/xdg-xu" "$G/xdg-xu"
  local cfg=$G/xdg-xu/config/sshvault/xu.json
  set_config "$cfg" engine kernel
  set_config "$cfg" remote "$REMOTE/xu"
  churn_tree "$SV_RUN/src-xu" 1
  XDG_CONFIG_HOME=$G/xdg-xu/config XDG_STATE_HOME=$G/xdg-xu/state XDG_CACHE_HOME=$G/xdg-xu/cache sv xu-push push xu ||
    { fail $s "kernel-engine push to the userspace-made image: $(why xu-push 0)"; return; }
  need_clean $s || return
  touch "$SV_RUN/xu.pushed"
  pass $s
}
xu_kernel_push

# xk: made here by the kernel engine; the host pushes to it with the userspace engine after the VM exits.
xk_kernel_init() {
  local s=xk-kernel-init-push
  make_tree "$SV_RUN/src-xk" 2
  # On tmpfs like any local state (measured: twice as slow on the 9p share), copied for the host at the end.
  export XDG_CONFIG_HOME=$G/xdg-xk/config XDG_STATE_HOME=$G/xdg-xk/state XDG_CACHE_HOME=$G/xdg-xk/cache
  sv xk-init init xk --remote "$REMOTE/xk" "${common[@]}" --engine kernel --source "$SV_RUN/src-xk" ||
    { fail $s "$(why xk-init 0)"; return; }
  sv xk-push push xk || { fail $s "$(why xk-push 0)"; return; }
  need_clean $s || return
  rm -rf "$SV_RUN/src-xk.v1"; cp -a "$SV_RUN/src-xk" "$SV_RUN/src-xk.v1"
  rm -rf "$SV_RUN/xdg-xk"; cp -a "$G/xdg-xk" "$SV_RUN/xdg-xk"
  touch "$SV_RUN/xk.ready"
  pass $s
}
(xk_kernel_init)

dmesg > "$LOGDIR/dmesg.txt" 2>&1
echo "guest scenarios done in $((SECONDS - T0)) s: $(grep -c '^PASS' "$RESULTS") passed, $(grep -c '^FAIL' "$RESULTS") failed"
! grep -q '^FAIL' "$RESULTS"
