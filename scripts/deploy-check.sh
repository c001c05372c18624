#!/usr/bin/env bash
# Render every overlay of deploy/ and check the result (make deploy-check; deploy/README.md "Checks"):
#   1. kubectl kustomize deploy/overlays/<name>                    (renders)
#   2. deploy/checks/check_rendered.py: the custom resources (CNPG Cluster, ServiceMonitor; no schema
#      in kubernetes-validate) and the design's cross-object invariants; splits out the built-in kinds
#   3. kubernetes-validate --strict on the built-in kinds          (API schemas, unknown fields)
#   4. checkov --framework kubernetes on the whole render          (security; skips only by annotation)
# and checkov --framework dockerfile on deploy/Dockerfile.
# usage: scripts/deploy-check.sh [DEPLOY_DIR] [OUT_DIR]; exits non-zero if any check fails.
# env (for the selftest): OVERLAYS="dev ..." only these overlays; FAIL_FAST=1 stop at the first
# failure; SKIP_DOCKERFILE=1 no Dockerfile scan.
set -uo pipefail
deploy=${1:-deploy}
out=${2:-target/deploy}
venv=${VENV:-.venv}
[ -d "$venv" ] && venv=$(cd "$venv" && pwd)   # absolute: the selftest runs edits in another directory
py=$venv/bin/python
kv=$venv/bin/kubernetes-validate
checkov=$venv/bin/checkov
here=$(cd "$(dirname "$0")/.." && pwd)

command -v kubectl >/dev/null || {
  echo "error: kubectl not found (needed for 'kubectl kustomize'): install it, e.g. apt-get install -y kubectl" \
    "or https://kubernetes.io/docs/tasks/tools/ , then run make deploy-check again" >&2
  exit 2
}
for tool in "$py" "$kv" "$checkov"; do
  [ -x "$tool" ] || { echo "error: $tool missing: run make pyenv (tests/requirements.txt)" >&2; exit 2; }
done

mkdir -p "$out"
status=0
fail() {
  echo "FAIL: $*"; status=1
  if [ "${FAIL_FAST:-0}" = 1 ]; then echo "deploy-check: FAILED"; exit 1; fi
}
if [ -n "${OVERLAYS:-}" ]; then
  overlays=(); for o in $OVERLAYS; do overlays+=("$deploy/overlays/$o/"); done
else
  overlays=("$deploy"/overlays/*/)
fi
[ -d "${overlays[0]}" ] || { echo "error: no overlays under $deploy/overlays" >&2; exit 2; }
for overlay in "${overlays[@]}"; do
  name=$(basename "$overlay")
  rendered=$out/$name.yaml
  builtin=$out/$name.builtin.yaml
  echo "== overlay $name"
  if ! kubectl kustomize "$overlay" >"$rendered" 2>"$out/$name.kustomize.log"; then
    cat "$out/$name.kustomize.log"; fail "$name: kustomize cannot render it"; continue
  fi
  "$py" "$here/deploy/checks/check_rendered.py" "$rendered" "$builtin" || fail "$name: custom resources or invariants"
  if [ -s "$builtin" ]; then
    "$kv" --strict --quiet "$builtin" >"$out/$name.validate.log" 2>&1; rc=$?
    grep -v '^INFO' "$out/$name.validate.log"
    if [ $rc -ne 0 ] || grep -q "Couldn't find schema" "$out/$name.validate.log"; then
      fail "$name: kubernetes-validate --strict"
    else
      echo "ok $name: kubernetes-validate --strict ($(grep -c '^kind:' "$builtin") built-in objects)"
    fi
  fi
  # --skip-download: no network (no Prisma Cloud guidelines); skips are the checkov.io/skip* annotations.
  if "$checkov" -f "$rendered" --framework kubernetes --compact --quiet --skip-download \
      -o cli >"$out/$name.checkov.log" 2>&1; then
    echo "ok $name: checkov $(grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$out/$name.checkov.log")"
  else
    grep -Ev '^\s*$' "$out/$name.checkov.log" | head -60
    fail "$name: checkov"
  fi
done
if [ "${SKIP_DOCKERFILE:-0}" = 1 ]; then :; else
echo "== Dockerfile"
if "$checkov" -f "$deploy/Dockerfile" --framework dockerfile --compact --quiet --skip-download \
    -o cli >"$out/dockerfile.checkov.log" 2>&1; then
  echo "ok Dockerfile: checkov $(grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$out/dockerfile.checkov.log")"
else
  grep -Ev '^\s*$' "$out/dockerfile.checkov.log" | head -40
  fail "Dockerfile: checkov"
fi
fi
if [ $status -eq 0 ]; then echo "deploy-check: every overlay renders and passes"; else echo "deploy-check: FAILED"; fi
exit $status
