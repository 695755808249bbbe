# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Sourced by the set-up scripts: apt_ensure TAG PACKAGE... installs the packages that are not
# installed yet (one apt-get update, only when something is missing) and says which.
apt_ensure() {
  local tag=$1 p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "$tag: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}
