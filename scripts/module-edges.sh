#!/usr/bin/env bash
# Prints, for each top-level module of src/, the other hanko modules its code names
# (`crate::X` or `super::X` at the top level), and the outside crates among serenity, sled and
# aws_sdk_*. Comments and doc lines are ignored. Used to keep the map in src/lib.rs honest:
#   scripts/module-edges.sh
set -euo pipefail
cd "$(dirname "$0")/../src"
mods=$(ls | sed -n 's/\.rs$//p; /\./!p' | grep -v -e '^lib$' -e '^main$' | sort -u)
for m in $mods; do
  files=$( { [ -f "$m.rs" ] && echo "$m.rs"; [ -d "$m" ] && find "$m" -name '*.rs'; true; } | sort)
  # Code only: // comments (also //! and ///) are dropped; test modules (`tests.rs`, and an
  # inline `#[cfg(test)] mod tests` at the end of a file) are left out.
  code=$(for f in $files; do case "$f" in */tests.rs) continue;; esac;
    awk '/^#\[cfg\(test\)\]/{t=1; next} t && /^mod tests *\{/{exit} {t=0; print}' "$f"; done | sed 's#//.*$##')
  uses=$(grep -o 'crate::[a-z_]*' <<<"$code" | sed 's/crate:://' | sort -u | grep -vx "$m" | tr '\n' ' ' || true)
  ext=$(grep -o -E '\b(serenity|sled|aws_sdk_[a-z0-9]+)\b' <<<"$code" | sed 's/aws_sdk_.*/aws_sdk/' | sort -u | tr '\n' ' ' || true)
  printf '%-14s %s| %s\n' "$m" "$uses" "$ext"
done
