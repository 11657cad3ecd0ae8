# shellcheck shell=bash
# Shared by run-kernel-lane.sh (host) and guest-kernel-engine.sh (VM): the same
# checks on both sides of the cross-engine tests.
#
# Expects: PROJ (project dir), LOGDIR (command outputs), RESULTS (file the
# PASS/FAIL lines are appended to), and XDG_CONFIG_HOME/XDG_STATE_HOME set per
# call by the caller.

pass() { echo "PASS $1" | tee -a "$RESULTS"; }
fail() { local n=$1; shift; echo "FAIL $n: $*" | tee -a "$RESULTS"; }
note() { echo "[$(date +%T)] $*"; }

# sv TAG ARGS...: runs the CLI with a time limit; stdout/stderr kept in
# $LOGDIR/TAG.out/.err; the exit code is returned and kept in SV_RC.
SV_RC=0
sv() {
  local tag=$1 t0=$SECONDS; shift
  SV_RC=0
  timeout -k 10 "${SV_CMD_TIMEOUT:-600}" "$PROJ/bin/sshvault" "$@" >"$LOGDIR/$tag.out" 2>"$LOGDIR/$tag.err" || SV_RC=$?
  note "sshvault $* -> exit $SV_RC in $((SECONDS - t0)) s"
  return "$SV_RC"
}

# What a failure report needs: command, exit code, the end of stderr.
why() { # why TAG [EXPECTED]
  printf 'exit %s%s; stderr: %s' "$SV_RC" "${2:+ (expected $2)}" "$(tail -c 600 "$LOGDIR/$1.err" | tr '\n' ' ')"
}

# json FILE JS-EXPR: evaluates EXPR with `d` = the parsed JSON of FILE.
json() { node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const r=eval(process.argv[2]);console.log(typeof r==="object"?JSON.stringify(r):String(r))' "$1" "$2"; }

# set_config FILE KEY VALUE: what a user moving a vault to another machine does by hand.
set_config() { node -e 'const fs=require("fs");const f=process.argv[1];const c=JSON.parse(fs.readFileSync(f,"utf8"));c[process.argv[2]]=process.argv[3];fs.writeFileSync(f,JSON.stringify(c,null,2)+"\n")' "$1" "$2" "$3"; }

# A small tree with what a backup must keep: modes, owners, a symlink, a hard
# link, an empty file and dir, names with spaces and UTF-8, mtimes.
make_tree() {
  local t=$1 big=${2:-2}
  mkdir -p "$t"/{docs,bin,private,empty,deep/a/b/c,"with space"}
  echo "hello from $(hostname) $(date +%s%N)" > "$t/docs/readme.txt"
  seq 1 20000 > "$t/docs/numbers.txt"
  head -c "${big}M" /dev/urandom > "$t/deep/a/b/c/blob.bin"
  head -c 300K /dev/urandom > "$t/with space/größe ü.dat"
  : > "$t/docs/empty.txt"
  printf '#!/bin/sh\necho tool\n' > "$t/bin/tool"; chmod 755 "$t/bin/tool"
  echo secret > "$t/private/secret"; chmod 600 "$t/private/secret"; chmod 700 "$t/private"
  echo owned > "$t/docs/owned.txt"; chown 1234:5678 "$t/docs/owned.txt"; chmod 640 "$t/docs/owned.txt"
  ln -s ../docs/readme.txt "$t/bin/readme-link"
  ln "$t/docs/numbers.txt" "$t/deep/numbers-hardlink.txt"
  touch -d '2020-02-02 02:02:02' "$t/docs/readme.txt"
}

# A change between two pushes: edit, add, delete, chmod, chown, rename.
churn_tree() {
  local t=$1 add=${2:-1}
  echo "changed $(date +%s%N)" >> "$t/docs/readme.txt"
  head -c "${add}M" /dev/urandom > "$t/docs/new-$RANDOM.bin"
  rm -f "$t/docs/empty.txt"
  chmod 644 "$t/bin/tool"
  chown 4321:8765 "$t/with space/größe ü.dat"
  [ -e "$t/deep/a/b/c/blob.bin" ] && mv "$t/deep/a/b/c/blob.bin" "$t/deep/a/blob-moved.bin"
  return 0
}

# One line per entry: type, mode, owner, size and mtime of files, symlink target;
# link counts only where hard links must survive (rdump does not keep them).
tree_meta() { # tree_meta DIR [links]
  local fmt_f='%P f %m %U %G %s %Ts\n'
  [ "${2:-}" = links ] && fmt_f='%P f %m %U %G %s %Ts n%n\n'
  (cd "$1" && find . -mindepth 1 \( -type f -printf "$fmt_f" \) -o \( -type l -printf '%P l -> %l\n' \) \
    -o \( -type d -printf '%P d %m %U %G\n' \) -o -printf '%P %y %m %U %G\n' | LC_ALL=C sort)
}

# compare_trees SRC COPY [links]: silent and 0 when equal, else prints the first differences.
compare_trees() {
  local out rc=0
  out=$(diff -r --no-dereference "$1" "$2" 2>&1) || rc=1
  [ $rc = 0 ] || { echo "content: $(echo "$out" | head -5 | tr '\n' ' ')"; }
  out=$(diff <(tree_meta "$1" "${3:-}") <(tree_meta "$2" "${3:-}")) || { rc=1; echo "metadata: $(echo "$out" | head -6 | tr '\n' ' ')"; }
  return $rc
}

# The snapshot holds each source under its absolute path (rsync --relative);
# accept a restore that puts it there or straight into DEST.
restored_root() { # restored_root DEST SRC
  if [ -d "$1$2" ]; then echo "$1$2"; else echo "$1"; fi
}

# Everything a kernel-engine run may leave behind, one line each; empty when clean.
leftovers() {
  local m
  for m in /dev/mapper/sshvault-*; do [ -e "$m" ] && echo "dm mapping $m"; done
  losetup -n -l -O NAME,BACK-FILE 2>/dev/null | sed 's/^/loop /'
  awk '$3 ~ /^fuse(\.|$|blk)/ {print "mount " $2 " (" $3 ")"}' /proc/mounts
  awk '$1 ~ /^\/dev\/(mapper|loop)/ {print "mount " $2 " (" $1 ")"}' /proc/mounts
  pgrep -a -x sshfs | sed 's/^/process /'
  pgrep -a -x qemu-nbd | sed 's/^/process /'
  pgrep -a -x nbdfuse | sed 's/^/process /'
  pgrep -a -x rsync | sed 's/^/process /'
  return 0
}

# Checks an image with tools that share no code with sshvault: qemu-img's
# LUKS driver decrypts it, debugfs reads the filesystem without mounting.
# independent_check IMAGE RAWPASS SNAPSHOT EXPECTED WORKDIR [SOURCE]: 0 when the copy of
# SOURCE (default EXPECTED, the path the snapshot stores it under) equals the tree EXPECTED.
independent_check() {
  local img=$1 key=$2 snap=$3 src=$4 w=$5 orig=${6:-$4}
  rm -rf "$w"; mkdir -p "$w/dump"
  qemu-img convert --object secret,id=s0,file="$key" \
    --image-opts driver=luks,key-secret=s0,file.filename="$img" -O raw "$w/plain.raw" 2>"$w/qemu-img.err" ||
    { echo "qemu-img could not decrypt: $(head -c 300 "$w/qemu-img.err")"; return 1; }
  debugfs -R "rdump /snapshots/$snap $w/dump" "$w/plain.raw" >"$w/debugfs.log" 2>&1
  if [ ! -d "$w/dump/$snap" ]; then echo "debugfs found no /snapshots/$snap: $(tail -c 300 "$w/debugfs.log")"; rm -f "$w/plain.raw"; return 1; fi
  local rc=0
  compare_trees "$src" "$(restored_root "$w/dump/$snap" "$orig")" || rc=1
  rm -f "$w/plain.raw"   # the image's size in plaintext; not worth keeping
  return $rc
}

# snapshots_json FILE: names of complete snapshots, oldest first, one per line.
complete_snapshots() { json "$1" 'd.filter(s=>s.complete).map(s=>s.name).join("\n")'; }
