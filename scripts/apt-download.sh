# Sourced by the fetch scripts: Debian packages downloaded without root.
#   apt_download DEST PACKAGE...   `apt-get download` into DEST; where the machine has no usable package
#                                  lists (container images often delete them), private ones are fetched
#                                  from its configured sources first, which needs no root either. On
#                                  failure it returns 1 with apt's reason in $apt_download_error.
apt_download() {
  local dest=$1
  shift
  local state
  state=$(mktemp -d) || return 1
  local log="$state/apt.log"
  local private=(-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o Debug::NoLocking=1)
  apt_download_error=""
  if (cd "$dest" && apt-get download "$@") >>"$log" 2>&1; then
    rm -rf "$state"
    return 0
  fi
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  if apt-get "${private[@]}" update >>"$log" 2>&1 && (cd "$dest" && apt-get "${private[@]}" download "$@") >>"$log" 2>&1; then
    rm -rf "$state"
    return 0
  fi
  apt_download_error=$(grep '^E:' "$log" | tail -n1)
  [ -n "$apt_download_error" ] || apt_download_error=$(tail -n1 "$log")
  rm -rf "$state"
  return 1
}
