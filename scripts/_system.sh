# Sourced by scripts/test: the Debian packages some tests need beside the Python ones.
#   fonts-noto-cjk — the Chinese font embedded in the statements and reports (PDF), and the pages' font
#   chromium       — the browser the page tests drive (Playwright; its own browser download is not used)
# Under CI=true they are installed when missing (CI runs as root on Debian); elsewhere a missing one
# is only named here, and the tests that need it skip saying so.
system_packages=(fonts-noto-cjk chromium)
missing=()
for package in "${system_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]} …" >&2
    apt_log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
      cat "$apt_log" >&2
      echo "could not install ${missing[*]}" >&2
    fi
    rm -f "$apt_log"
  else
    echo "note: Debian packages missing: ${missing[*]} (sudo apt-get install ${missing[*]}); the tests that need them skip" >&2
  fi
fi
