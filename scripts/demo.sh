#!/usr/bin/env bash
# The main job end to end against a throwaway local SSH host: init, push,
# change some files, push again, list, stats. Everything lives in a temp dir
# that is removed at the end (DEMO_KEEP=1 keeps it). DEMO_FS=ext4 or ext2 (the seeds' layout) instead of the default btrfs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >/dev/null
SV="$PWD/bin/sshvault"

D=$(mktemp -d /tmp/sshvault-demo.XXXXXX)
export XDG_CONFIG_HOME="$D/config" XDG_STATE_HOME="$D/state" XDG_CACHE_HOME="$D/cache"
cleanup() {
  "$SV" recover >/dev/null 2>&1 || true
  [ -s "$D/sshd.pid" ] && kill "$(cat "$D/sshd.pid")" 2>/dev/null || true
  if [ "${DEMO_KEEP:-0}" = 1 ]; then echo "kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# A throwaway sshd on 127.0.0.1: own host key, own user key, random port.
mkdir -p "$D/remote" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$D/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$D/id_demo"
cp "$D/id_demo.pub" "$D/authorized_keys"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat > "$D/sshd_config" <<CFG
Port $PORT
ListenAddress 127.0.0.1
HostKey $D/host_key
AuthorizedKeysFile $D/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $D/sshd.pid
Subsystem sftp internal-sftp
CFG
/usr/sbin/sshd -f "$D/sshd_config"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

# Something to back up: Debian's documentation plus a few files of our own.
mkdir -p "$D/src"
cp -a /usr/share/doc "$D/src/doc"
head -c 4M /dev/urandom > "$D/src/photo.raw"
echo "first version" > "$D/src/notes.txt"
printf '%s' "demo passphrase $(head -c 12 /dev/urandom | base64)" > "$D/passphrase"
chmod 600 "$D/passphrase"

step sshvault init demo --remote "ssh://root@127.0.0.1:$PORT$D/remote" --size 1G --fs "${DEMO_FS:-btrfs}" --source "$D/src" ...
"$SV" init demo --remote "ssh://root@127.0.0.1:$PORT$D/remote" --size 1G --fs "${DEMO_FS:-btrfs}" \
  --identity "$D/id_demo" --known-hosts "$D/known_hosts" --accept-new-host-key \
  --passphrase-file "$D/passphrase" --source "$D/src"

step sshvault push
"$SV" push

step "change files: modify one, add 2 MB, delete a directory"
echo "second version" > "$D/src/notes.txt"
head -c 2M /dev/urandom > "$D/src/new.bin"
rm -rf "$D/src/doc/$(ls "$D/src/doc" | head -1)"

step sshvault push
"$SV" push

step sshvault list
"$SV" list

step sshvault stats
"$SV" stats
