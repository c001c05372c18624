"""Checks of a rendered overlay (kubectl kustomize output) that the schema validators cannot do.

usage: check_rendered.py RENDERED.yaml BUILTIN_OUT.yaml

- Splits the documents: built-in kinds go to BUILTIN_OUT.yaml for `kubernetes-validate --strict`;
  the custom resources (CloudNativePG Cluster, Prometheus Operator ServiceMonitor) have no schema
  there and are checked here: apiVersion, kind, metadata.name and the spec fields the CRDs require
  (plus the fields Mahnwerk relies on). Any other custom kind is an error (it would pass unchecked).
- Checks the design's invariants across objects: every mahnwerk Deployment runs `serve` with one
  service in MAHNWERK_SERVICES and probes gRPC health on 50051 and exposes metrics on 9464; the
  relay runs exactly one replica; a consumer HPA never scales beyond MAHNWERK_PARTITIONS;
  MAHNWERK_STREAM_REPLICAS is one value in every pod, 1 to 5 and at most the NATS servers; the
  ServiceMonitor selects Services that have its port; the services connect as an app role (the
  Secret of a Cluster's `managed.roles` entry, never the owner's `{cluster}-app`), and the migrate
  Job as the owner (`{cluster}-app`) with `--app-role` naming that role;
  every object lives in the rendered Namespace; the Grafana dashboard ConfigMap holds valid JSON.
Exit status 1 and one line per problem on failure.
"""
import sys

import yaml

SERVICES = {"ingest", "relay", "dunning", "matching", "letters", "collection"}
CONSUMERS = {"dunning", "matching", "letters", "collection"}
CUSTOM = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
CUSTOM_GROUPS = {"postgresql.cnpg.io", "monitoring.coreos.com"}

errors = []


def err(obj, msg):
    kind = obj.get("kind", "?") if isinstance(obj, dict) else "?"
    name = (obj.get("metadata") or {}).get("name", "?") if isinstance(obj, dict) else "?"
    errors.append(f"{kind}/{name}: {msg}")


def get(obj, *path):
    for p in path:
        if isinstance(obj, dict):
            obj = obj.get(p)
        elif isinstance(obj, list) and isinstance(p, int) and p < len(obj):
            obj = obj[p]
        else:
            return None
    return obj


def check_cluster(c):
    inst = get(c, "spec", "instances")
    if not isinstance(inst, int) or inst < 1:
        err(c, "spec.instances (required) must be an integer >= 1")
    size = get(c, "spec", "storage", "size")
    if not isinstance(size, str) or not size:
        err(c, "spec.storage.size must be set (the data must not live on an emptyDir)")
    for f in ("database", "owner"):
        if not get(c, "spec", "bootstrap", "initdb", f):
            err(c, f"spec.bootstrap.initdb.{f} must be set")
    sync = get(c, "spec", "postgresql", "synchronous")
    if sync is not None:
        if sync.get("method") not in ("any", "first") or not isinstance(sync.get("number"), int):
            err(c, "spec.postgresql.synchronous needs method any|first and an integer number")
        elif isinstance(inst, int) and sync["number"] >= inst:
            err(c, "spec.postgresql.synchronous.number must be below spec.instances")


def check_servicemonitor(sm, services):
    sel = get(sm, "spec", "selector", "matchLabels")
    if not isinstance(sel, dict) or not sel:
        err(sm, "spec.selector.matchLabels (required) must select the Services")
        return
    eps = get(sm, "spec", "endpoints")
    if not isinstance(eps, list) or not eps:
        err(sm, "spec.endpoints must list at least one endpoint")
        return
    matched = [s for s in services if all(get(s, "metadata", "labels", k) == v for k, v in sel.items())]
    if not matched:
        err(sm, f"selector {sel} matches no Service")
    for ep in eps:
        port = ep.get("port")
        if not port:
            err(sm, "every endpoint needs a named port")
            continue
        missing = [get(s, "metadata", "name") for s in matched if port not in {p.get("name") for p in get(s, "spec", "ports") or []}]
        if missing:
            err(sm, f"port {port!r} missing on the selected Services {missing}")


def env_of(container, configmaps):
    env = {}
    for ref in container.get("envFrom") or []:
        name = get(ref, "configMapRef", "name")
        if name in configmaps:
            env.update(configmaps[name])
    for e in container.get("env") or []:
        env[e["name"]] = e.get("value", e.get("valueFrom"))
    return env


def check_migrate_job(docs, clusters, roles):
    jobs = [d for d in docs if d.get("kind") == "Job" and get(d, "metadata", "labels", "app.kubernetes.io/component") == "migrate"]
    if not jobs:
        errors.append("the migrate Job (app.kubernetes.io/component: migrate) is missing")
    for j in jobs:
        c = get(j, "spec", "template", "spec", "containers", 0) or {}
        env = env_of(c, {})
        db = env.get("MAHNWERK_DATABASE_URL")
        secret = get(db, "secretKeyRef", "name") if isinstance(db, dict) else None
        if secret not in {f"{cl}-app" for cl in clusters}:
            err(j, f"the migrate Job must connect as the owner (the CNPG app Secret of a Cluster), found {db!r}")
        args = c.get("args") or []
        if args[:2] != ["migrate", "--app-role"] or len(args) != 3 or args[2] not in roles:
            err(j, f"args must be [migrate, --app-role, ROLE] with ROLE a Cluster's managed app role {sorted(roles)}, found {args}")


def check_mahnwerk(docs):
    configmaps = {get(d, "metadata", "name"): d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}
    clusters = {get(d, "metadata", "name") for d in docs if d.get("kind") == "Cluster"}
    # The services' roles: managed roles that log in and are not superusers, by their Secret.
    app_roles = {}
    for d in docs:
        if d.get("kind") != "Cluster":
            continue
        for r in get(d, "spec", "managed", "roles") or []:
            secret = get(r, "passwordSecret", "name")
            if r.get("login") and not r.get("superuser") and secret and r.get("ensure", "present") == "present":
                app_roles[secret] = r.get("name")
    check_migrate_job(docs, clusters, set(app_roles.values()))
    deployments = {}
    partitions = set()
    stream_replicas = set()
    for d in docs:
        if d.get("kind") != "Deployment" or get(d, "metadata", "labels", "app.kubernetes.io/name") != "mahnwerk":
            continue
        c = get(d, "spec", "template", "spec", "containers", 0) or {}
        env = env_of(c, configmaps)
        svc = env.get("MAHNWERK_SERVICES")
        if svc not in SERVICES:
            err(d, f"MAHNWERK_SERVICES must name exactly one service, found {svc!r}")
            continue
        deployments[svc] = d
        if c.get("args") != ["serve"]:
            err(d, f"args must be [serve], found {c.get('args')}")
        for probe in ("readinessProbe", "livenessProbe"):
            if get(c, probe, "grpc", "port") != 50051:
                err(d, f"{probe} must be a gRPC health probe on port 50051")
        if env.get("MAHNWERK_LISTEN") != "0.0.0.0:50051":
            err(d, "MAHNWERK_LISTEN must be 0.0.0.0:50051")
        if env.get("MAHNWERK_METRICS_LISTEN") != "0.0.0.0:9464":
            err(d, "MAHNWERK_METRICS_LISTEN must be 0.0.0.0:9464")
        if 9464 not in {p.get("containerPort") for p in c.get("ports") or []}:
            err(d, "container port 9464 (metrics) missing")
        if "MAHNWERK_PARTITIONS" in env:
            partitions.add(env["MAHNWERK_PARTITIONS"])
        stream_replicas.add(env.get("MAHNWERK_STREAM_REPLICAS", "1"))
        db = env.get("MAHNWERK_DATABASE_URL")
        secret = get(db, "secretKeyRef", "name") if isinstance(db, dict) else None
        if secret in {f"{cl}-app" for cl in clusters}:
            err(d, f"MAHNWERK_DATABASE_URL must not be the database owner's Secret {secret!r}: the services run as an app role (a Cluster's managed.roles)")
        elif secret not in app_roles or get(db, "secretKeyRef", "key") != "uri":
            err(d, f"MAHNWERK_DATABASE_URL must come from the `uri` of a Cluster's managed app role Secret {sorted(app_roles)}, found {db!r}")
    for svc in SERVICES - deployments.keys():
        errors.append(f"Deployment for service {svc!r} missing")
    if len(partitions) != 1:
        errors.append(f"MAHNWERK_PARTITIONS must be set to one value in every mahnwerk pod, found {sorted(partitions)}")
        return
    parts = int(next(iter(partitions)))
    check_stream_replicas(docs, stream_replicas)
    relay = deployments.get("relay")
    if relay is not None and get(relay, "spec", "replicas") != 1:
        err(relay, "the relay must run exactly one replica")
    for d in docs:
        if d.get("kind") != "HorizontalPodAutoscaler":
            continue
        target = get(d, "spec", "scaleTargetRef", "name")
        svc = target.removeprefix("mahnwerk-") if target else None
        if svc == "relay":
            err(d, "the relay must not be autoscaled")
        if svc in CONSUMERS and (get(d, "spec", "maxReplicas") or 0) > parts:
            err(d, f"maxReplicas {get(d, 'spec', 'maxReplicas')} exceeds MAHNWERK_PARTITIONS={parts} (extra consumer replicas would idle)")


def check_stream_replicas(docs, values):
    """The services create every stream with MAHNWERK_STREAM_REPLICAS replicas: the same value in
    every pod (else they would move the streams back and forth), and JetStream places each replica
    on its own server, so no more than the NATS StatefulSet runs."""
    if len(values) != 1:
        errors.append(f"MAHNWERK_STREAM_REPLICAS must be one value in every mahnwerk pod, found {sorted(values)}")
        return
    value = next(iter(values))
    if not value.isdigit() or not 1 <= int(value) <= 5:
        errors.append(f"MAHNWERK_STREAM_REPLICAS={value} must be an integer from 1 to 5")
        return
    nats = [d for d in docs if d.get("kind") == "StatefulSet" and get(d, "metadata", "name") == "nats"]
    servers = get(nats[0], "spec", "replicas") if nats else None
    if isinstance(servers, int) and int(value) > servers:
        err(nats[0], f"MAHNWERK_STREAM_REPLICAS={value} exceeds the {servers} NATS server(s) (a stream keeps one replica per server)")


def check_dashboards(docs):
    import json

    for d in docs:
        if d.get("kind") != "ConfigMap" or get(d, "metadata", "labels", "grafana_dashboard") != "1":
            continue
        for key, text in (d.get("data") or {}).items():
            try:
                dash = json.loads(text)
            except ValueError as e:
                err(d, f"{key} is not JSON: {e}")
                continue
            panels = dash.get("panels") or []
            if not dash.get("uid") or not panels:
                err(d, f"{key}: a dashboard needs a uid and panels")
            for panel in panels:
                exprs = [t.get("expr") for t in panel.get("targets") or []]
                if not exprs or not all(isinstance(e, str) and "mahnwerk_" in e for e in exprs):
                    err(d, f"{key}: panel {panel.get('title')!r} needs PromQL targets on mahnwerk_* metrics")


def main():
    src, builtin_out = sys.argv[1], sys.argv[2]
    with open(src) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    builtin = []
    for d in docs:
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") or not get(d, "metadata", "name"):
            err(d, "apiVersion, kind and metadata.name are required")
            continue
        group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
        if (d["apiVersion"], d["kind"]) in CUSTOM:
            continue
        if group in CUSTOM_GROUPS or (("." in group) and not group.endswith("k8s.io")):
            err(d, f"custom resource {d['apiVersion']} {d['kind']} has no check: add one to {__file__}")
            continue
        builtin.append(d)
    services = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Service"]
    for d in docs:
        if not isinstance(d, dict):
            continue
        if d.get("kind") == "Cluster" and d.get("apiVersion") == "postgresql.cnpg.io/v1":
            check_cluster(d)
        elif d.get("kind") == "ServiceMonitor" and d.get("apiVersion") == "monitoring.coreos.com/v1":
            check_servicemonitor(d, services)
    check_mahnwerk([d for d in docs if isinstance(d, dict)])
    check_dashboards([d for d in docs if isinstance(d, dict)])
    namespaces = {get(d, "metadata", "name") for d in docs if isinstance(d, dict) and d.get("kind") == "Namespace"}
    for d in docs:
        if isinstance(d, dict) and d.get("kind") != "Namespace" and get(d, "metadata", "namespace") not in namespaces:
            err(d, f"metadata.namespace must be the kustomization's namespace {sorted(namespaces)} (an overlay without `namespace:`?)")
    with open(builtin_out, "w") as f:
        yaml.safe_dump_all(builtin, f, sort_keys=False)
    custom = len(docs) - len(builtin)
    if errors:
        for e in errors:
            print(f"FAIL {src}: {e}")
        sys.exit(1)
    print(f"ok {src}: {custom} custom resources and the cross-object invariants checked, {len(builtin)} built-in objects for kubernetes-validate")


if __name__ == "__main__":
    main()
