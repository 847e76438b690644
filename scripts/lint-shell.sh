#!/usr/bin/env bash
# Lints every shell script git tracks: *.sh files and files whose first line is a sh or bash shebang.
# Each must pass a syntax check by its own shell (sh -n, with dash when present, for #!/bin/sh scripts;
# bash -n for the rest) and shellcheck, which follows sourced files and picks the dialect from the shebang.
#   SHELLCHECK=.venv/bin/shellcheck scripts/lint-shell.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHELLCHECK=${SHELLCHECK:-.venv/bin/shellcheck}
POSIX_SH=$(command -v dash || echo sh)
any_shebang='^#!.*[/ ](ba)?sh([[:space:]]|$)'
sh_shebang='^#!.*[/ ]sh([[:space:]]|$)'

scripts=()
rc=0
while IFS= read -r -d '' f; do
  [[ -f $f ]] || continue # deleted in the work tree, not yet in the index
  first=""
  IFS= read -r first <"$f" || true
  [[ $f == *.sh || $first =~ $any_shebang ]] || continue
  scripts+=("$f")
  if [[ $first =~ $sh_shebang ]]; then shell=$POSIX_SH; else shell=bash; fi
  "$shell" -n "$f" || { echo "lint-shell: $f: $shell -n failed" >&2; rc=1; }
done < <(git ls-files -z)

((${#scripts[@]} > 0)) || { echo "lint-shell: no shell scripts found" >&2; exit 1; }
"$SHELLCHECK" --external-sources -- "${scripts[@]}" || rc=1
echo "lint-shell: ${#scripts[@]} scripts checked: ${scripts[*]}"
exit "$rc"
