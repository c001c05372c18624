#!/usr/bin/env bash
# Shows that make deploy-check fails on broken manifests: copies deploy/ to a temporary directory,
# breaks it one way at a time, runs scripts/deploy-check.sh on the copy and expects it to fail with
# the expected message. Run by make deploy-check after the check of the unbroken deploy/ passed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-.venv}
[ -d "$venv" ] && venv=$(cd "$venv" && pwd)   # absolute: the selftest runs edits in another directory
py=$venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# case NAME OVERLAYS EXPECTED-OUTPUT-REGEX PYTHON-EDIT (the edit runs with cwd = the copy of
# deploy/). The check runs on the named overlays only, stops at its first failure and skips the
# Dockerfile: make deploy-check has just run the full check on the unbroken deploy/, so every failure
# here comes from the edit.
case_() {
  local name=$1 only=$2 expect=$3 edit=$4
  rm -rf "$tmp/deploy" "$tmp/out"
  cp -r "$here/deploy" "$tmp/deploy"
  (cd "$tmp/deploy" && "$py" -c "$edit") || { echo "selftest $name: the edit itself failed"; status=1; return; }
  if OVERLAYS=$only FAIL_FAST=1 SKIP_DOCKERFILE=1 VENV=$venv \
      "$here/scripts/deploy-check.sh" "$tmp/deploy" "$tmp/out" >"$tmp/log" 2>&1; then
    echo "selftest FAIL $name: deploy-check passed on a broken manifest"; status=1
  elif grep -Eq "$expect" "$tmp/log"; then
    echo "selftest ok $name: deploy-check fails ($(grep -Em1 "$expect" "$tmp/log" | sed 's/^[[:space:]]*//' | cut -c1-110))"
  else
    echo "selftest FAIL $name: deploy-check failed, but without /$expect/:"; tail -20 "$tmp/log"; status=1
  fi
}

EDIT_YAML='
import sys, yaml
def edit(path, fn):
    docs = list(yaml.safe_load_all(open(path)))
    for d in docs:
        fn(d)
    yaml.safe_dump_all(docs, open(path, "w"), sort_keys=False)
'

# 1. a privileged container (security scan: checkov CKV_K8S_16)
case_ privileged dev 'CKV_K8S_16' "$EDIT_YAML
def f(d):
    if d['kind'] == 'Deployment':
        d['spec']['template']['spec']['containers'][0]['securityContext']['privileged'] = True
edit('base/services/ingest.yaml', f)"

# 2. a required field removed (API schema: Deployment spec.selector)
case_ missing-selector dev 'FAIL: .*kubernetes-validate' "$EDIT_YAML
def f(d):
    if d['kind'] == 'Deployment':
        del d['spec']['selector']
edit('base/services/relay.yaml', f)"

# 3. an unknown field (strict schema validation)
case_ unknown-field production 'FAIL: .*kubernetes-validate' "$EDIT_YAML
def f(d):
    if d['kind'] == 'StatefulSet':
        d['spec']['template']['spec']['containers'][0]['livenessprobe'] = {'tcpSocket': {'port': 4222}}
edit('base/nats.yaml', f)"

# 4. a required field of a custom resource removed (CNPG Cluster spec.instances)
case_ cnpg-instances production 'spec.instances \(required\)' "$EDIT_YAML
def f(d):
    d['spec'].pop('instances')
edit('base/postgres.yaml', f)
import re
p = 'overlays/dev/kustomization.yaml'; s = open(p).read()
s = s.replace('''      - op: replace
        path: /spec/instances
        value: 1
''', '')
open(p, 'w').write(s)
p = 'overlays/production/kustomization.yaml'; s = open(p).read()
s = s.replace('      - {op: replace, path: /spec/instances, value: 3}\n', '')
open(p, 'w').write(s)"

# 5. a design invariant broken: consumers autoscaled beyond the partitions
case_ hpa-beyond-partitions production 'exceeds MAHNWERK_PARTITIONS' "
p = 'overlays/production/kustomization.yaml'; s = open(p).read()
s = s.replace('MAHNWERK_PARTITIONS=8', 'MAHNWERK_PARTITIONS=4')
open(p, 'w').write(s)"

# 6. a container without resource limits and running as root (checkov CKV_K8S_11/13, CKV_K8S_40)
case_ no-limits-root dev 'CKV_K8S_(11|13|40)' "$EDIT_YAML
def f(d):
    if d['kind'] == 'Job':
        c = d['spec']['template']['spec']['containers'][0]
        del c['resources']['limits']
        c['securityContext']['runAsUser'] = 0
edit('base/migrate-job.yaml', f)"

# 7. a manifest that kustomize cannot render
case_ unrenderable dev 'kustomize cannot render' "
p = 'base/kustomization.yaml'; s = open(p).read()
s = s.replace('  - namespace.yaml\n', '  - namespace.yaml\n  - does-not-exist.yaml\n', 1)
open(p, 'w').write(s)"

# 8. an overlay's own objects outside the namespace (the overlay lost its `namespace:`)
case_ no-namespace production 'metadata.namespace must be' "
p = 'overlays/production/kustomization.yaml'; s = open(p).read()
s = s.replace('namespace: mahnwerk\n', '', 1)
open(p, 'w').write(s)"

# 9. more stream replicas than NATS servers (the services could not create the streams)
case_ stream-replicas-beyond-servers production 'exceeds the 3 NATS server' "
p = 'overlays/production/kustomization.yaml'; s = open(p).read()
assert 'MAHNWERK_STREAM_REPLICAS=3' in s
s = s.replace('MAHNWERK_STREAM_REPLICAS=3', 'MAHNWERK_STREAM_REPLICAS=5')
open(p, 'w').write(s)"

# 10. a service connecting as the database owner (it could disable the append-only triggers)
case_ service-as-owner dev "must not be the database owner's Secret" "
p = 'base/services/dunning.yaml'; s = open(p).read()
s = s.replace('name: mahnwerk-pg-service', 'name: mahnwerk-pg-app', 1)
open(p, 'w').write(s)"

# 11. the migrate Job without --app-role (the services' role would get no grants)
case_ migrate-without-app-role production 'args must be \[migrate, --app-role, ROLE\]' "
p = 'base/migrate-job.yaml'; s = open(p).read()
s = s.replace('args: [migrate, --app-role, mahnwerk_app]', 'args: [migrate]', 1)
open(p, 'w').write(s)"

[ $status -eq 0 ] && echo "deploy-check selftest: every broken manifest was caught" || echo "deploy-check selftest: FAILED"
exit $status
