#!/usr/bin/env bash
# Installs everything sshvault and its tests need on Debian 12, as root:
# the system packages, then the npm dependencies, then the build.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  openssh-client openssh-server sshfs fuse3   # transport and the remote mount
  cryptsetup-bin qemu-utils libnbd-bin         # LUKS format and keys; the userspace engine (nbdfuse)
  e2fsprogs rsync util-linux mount             # filesystem, snapshots, loop devices
  btrfs-progs                                  # btrfs vaults (--fs btrfs)
  acl attr                                     # the tests set ACLs and xattrs on their source trees
  librsvg2-bin libxml2-utils groff-base        # the tests parse and render stats --plot's SVG and the man page
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
mkdir -p /run/sshd

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "sshvault needs Node.js 20 or newer (apt-get install nodejs on Debian 13, or NodeSource on Debian 12)" >&2
  exit 2
fi
echo "== npm ci"
# ssh2's install script builds its native crypto addon (chacha20 at full speed); package.json allows it.
npm ci --no-audit --no-fund
echo "== build"
npm run build
# The manual page (made from the same definitions as --help), where man finds it.
mkdir -p /usr/local/share/man/man1
node bin/sshvault man > /usr/local/share/man/man1/sshvault.1
