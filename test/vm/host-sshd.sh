# shellcheck shell=bash
# Sourced by vmlane.sh (selftest) and run-kernel-lane.sh: a throwaway root sshd
# on the host's 127.0.0.1 that the VM reaches as 10.0.2.2 through qemu
# user-net. qemu's user-net connects from the host's loopback, so sshd sees
# 127.0.0.1 as the peer and ListenAddress 127.0.0.1 is enough.
#
#   sshd_start DIR   keys, config and log in DIR; sets SSHD_PORT, SSHD_PID,
#                    SSHD_USER_KEY (private key authorized for root)
#   sshd_known_hosts FILE HOST...   writes FILE with the host key for [HOST]:SSHD_PORT
#   sshd_stop

free_port() {
  # Port 0 lets the kernel pick; the race until sshd binds it is covered by sshd_start's retry.
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

sshd_start() {
  local d=$1 try
  mkdir -p "$d" /run/sshd   # sshd refuses to start without its privilege-separation dir
  rm -f "$d/host_ed25519" "$d/host_ed25519.pub" "$d/user_ed25519" "$d/user_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -C vmlane-host -f "$d/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C vmlane-user -f "$d/user_ed25519"
  cp "$d/user_ed25519.pub" "$d/authorized_keys"
  SSHD_USER_KEY=$d/user_ed25519
  for try in 1 2 3 4 5; do
    SSHD_PORT=$(free_port)
    cat > "$d/sshd_config" <<EOF
ListenAddress 127.0.0.1:$SSHD_PORT
HostKey $d/host_ed25519
AuthorizedKeysFile $d/authorized_keys
PidFile none
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
MaxStartups 100
MaxSessions 100
LogLevel ERROR
EOF
    /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>>"$d/sshd.log" &
    SSHD_PID=$!
    for _ in $(seq 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null; then return 0; fi
      kill -0 "$SSHD_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$SSHD_PID" 2>/dev/null; wait "$SSHD_PID" 2>/dev/null
    echo "[sshd] attempt $try on port $SSHD_PORT failed: $(tail -n 3 "$d/sshd.log")" >&2
  done
  SSHD_PID=""
  return 1
}

sshd_known_hosts() {
  local file=$1 h; shift
  : > "$file"
  for h in "$@"; do
    printf '[%s]:%s %s\n' "$h" "$SSHD_PORT" "$(cut -d' ' -f1,2 "$(dirname "$SSHD_USER_KEY")/host_ed25519.pub")" >> "$file"
  done
}

sshd_stop() {
  if [ -n "${SSHD_PID:-}" ]; then
    # Connection children outlive the listener (they are reparented), so collect
    # the whole tree first and end it by pid.
    local pids
    pids=$(descendants "$SSHD_PID")
    # shellcheck disable=SC2086 # one word per pid
    kill "$SSHD_PID" $pids 2>/dev/null || true
    wait "$SSHD_PID" 2>/dev/null || true
    SSHD_PID=""
  fi
}

descendants() {
  local c
  for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done
}
