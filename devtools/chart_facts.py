"""Facts about the pinned Helm charts, read from the charts' own files and written as data for the tests.

The tests (tests/infra/test_charts.py, tests/infra/cluster_model.py) check our Helm values and plan against the
upstream charts at the versions infra/charts.py pins. The charts themselves are other projects' code and stay out of
the repository; what the tests need from them is committed instead, as data: tests/infra/data/helm-chart-facts.json.
Per chart and version it holds

* `name`, `version`, `appVersion` (Chart.yaml) and `source` (repository, tag, commit, path: the provenance table);
* `values`: values.yaml pruned to the paths we set or rely on (`VALUE_PATHS`, plus every path a recorded condition
  reads), each kept whole where it exists; a path absent there is absent from the chart. `value_paths` lists the
  paths looked up;
* cluster-autoscaler: `rbac`, the rules of its ClusterRole and Role as rendered for our values (`render`);
* kube-prometheus-stack: `crds`, the files of its `charts/crds/crds/` (Helm installs them before the templates) and
  the Chart.yaml dependency condition that installs them;
* prometheus-adapter: `objects`, what its APIService and rules ConfigMap templates create and the condition (value
  paths) each is guarded by, to be evaluated against our values by the tests.

Input: a directory laid out `<name>-<version>/{Chart.yaml,values.yaml,templates/…}` (and
`kube-prometheus-stack-*/crds.list`: the file names of `charts/crds/crds/`, one a line) with a PROVENANCE.md whose
table names each directory's repository, tag, commit and path; default /work/chart-sources. Or the upstream
repositories themselves (`--git owner/name=GIT_DIR`, e.g. what the tool library's `fetch github:kubernetes/autoscaler`
and `fetch github:prometheus-community/helm-charts` bring to /work/.mirror/…/repo): each file is then read with
`git show <commit>:<path>/<file>` at the commit of the provenance table (`--provenance`: a PROVENANCE.md, or the
committed facts file, whose `source` entries carry the same table).

    python -m devtools.chart_facts                       # /work/chart-sources -> tests/infra/data/…json
    python -m devtools.chart_facts --check               # exit 1 if the committed file differs
    python -m devtools.chart_facts --provenance tests/infra/data/helm-chart-facts.json \\
        --git kubernetes/autoscaler=/work/.mirror/kubernetes+autoscaler/repo \\
        --git prometheus-community/helm-charts=/work/.mirror/prometheus-community+helm-charts/repo --check

A new pin: add its row to the provenance table (repository, tag `<chart>-<version>` or
`cluster-autoscaler-chart-<version>`, the tag's commit, the chart's path), regenerate, commit the JSON;
tests/infra/test_charts.py fails for a pinned version the file does not cover.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCES = Path("/work/chart-sources")
OUTPUT = ROOT / "tests" / "infra" / "data" / "helm-chart-facts.json"

# The values.yaml paths we set (infra/manifests/cluster_autoscaler.py, monitoring_stack.py) or whose defaults we rely
# on. A free-form map we fill (annotations, extraArgs) is one path, kept whole.
VALUE_PATHS = {
    "cluster-autoscaler": [
        "cloudProvider",
        "awsRegion",
        "autoDiscovery.clusterName",
        "rbac.create",
        "rbac.clusterScoped",
        "rbac.pspEnabled",
        "rbac.serviceAccount.create",
        "rbac.serviceAccount.name",
        "rbac.serviceAccount.annotations",
        "extraArgs",
    ],
    "kube-prometheus-stack": [
        "fullnameOverride",
        "crds.enabled",
        "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues",
        "prometheus.prometheusSpec.podMonitorSelector",
        "prometheus.prometheusSpec.podMonitorNamespaceSelector",
        "prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues",
        "prometheus.prometheusSpec.ruleSelector",
        "prometheus.prometheusSpec.ruleNamespaceSelector",
        "prometheus.prometheusSpec.portName",
        "prometheus.service.port",
        "grafana.enabled",
        "grafana.sidecar.dashboards.label",
        "grafana.sidecar.dashboards.labelValue",
        "grafana.sidecar.dashboards.searchNamespace",
        "kubeStateMetrics.enabled",
    ],
    "prometheus-adapter": ["prometheus.url", "prometheus.port", "rules.default", "rules.existing", "rules.custom"],
}
# The cluster autoscaler's RBAC as rendered for our values (cloudProvider aws, rbac.create and rbac.clusterScoped
# true, everything else at its default): the conditions that hold for them. Every other `if` is taken as false.
RBAC_TEMPLATES = {"ClusterRole": "templates/clusterrole.yaml", "Role": "templates/role.yaml"}
RBAC_TRUE = {"and .Values.rbac.create .Values.rbac.clusterScoped", ".Values.rbac.create"}
# prometheus-adapter: the objects whose guard the tests evaluate; rendering one takes its guard and an API server
# serving apiregistration.k8s.io/v1 as true.
ADAPTER_TEMPLATES = {"APIService": "templates/custom-metrics-apiservice.yaml", "ConfigMap": "templates/configmap.yaml"}
ADAPTER_TRUE = {'.Capabilities.APIVersions.Has "apiregistration.k8s.io/v1"'}
CRDS_DIR = "charts/crds/crds"  # in kube-prometheus-stack

_IF = re.compile(r"\{\{-?\s*if\s+(.*?)\s*-?\}\}")
_BLOCK = re.compile(r"\{\{-?\s*(with|range)\s.*\}\}")
_END = re.compile(r"\{\{-?\s*end\s*-?\}\}")
_ELSE = re.compile(r"\{\{-?\s*else\s*-?\}\}")
_ACTION = re.compile(r"\{\{.*?\}\}")
_VALUE = re.compile(r"\.Values\.([A-Za-z0-9_.]+)")


class FactsError(Exception):
    """A chart file is missing or not in the shape the generator reads (a new version changed it: look first)."""


def render(template: str, true: set[str]) -> str:
    """A Helm template rendered line by line for values under which exactly the `if` conditions in `true` hold:
    every other conditional block (other cloud providers, PSP, extra rules, `with`/`range` over optional values) is
    dropped, a line that is a lone action dropped, and any other `{{ … }}` replaced by the placeholder `x`."""
    lines, active = [], [True]
    for line in template.splitlines():
        stripped = line.strip()
        if m := _IF.fullmatch(stripped):
            active.append(active[-1] and m.group(1) in true)
            continue
        if _BLOCK.fullmatch(stripped):  # optional extras (annotations): empty for us
            active.append(False)
            continue
        if _END.fullmatch(stripped):
            active.pop()
            continue
        if _ELSE.fullmatch(stripped):
            active[-1] = not active[-1] and active[-2]
            continue
        if not active[-1] or re.fullmatch(r"\{\{.*\}\}", stripped):
            continue
        lines.append(_ACTION.sub("x", line))
    return "\n".join(lines)


def guard(template: str) -> str:
    """The condition of the `if` that wraps the whole template (its first line; its `end`, the last action)."""
    lines = [s for s in (line.strip() for line in template.splitlines()) if s]
    first = _IF.fullmatch(lines[0]) if lines else None
    if not first:
        raise FactsError(f"the template does not start with an `if`: {lines[:1]}")
    depth = 0
    for i, s in enumerate(lines):
        if _IF.fullmatch(s) or _BLOCK.fullmatch(s):
            depth += 1
        elif _END.fullmatch(s):
            depth -= 1
            if depth == 0 and i != len(lines) - 1:
                raise FactsError(f"the `if {first.group(1)}` on its first line ends before the template does")
    return first.group(1)


def condition(expr: str) -> dict:
    """A Go-template condition over values as data: {"all_of" | "any_of" | "none_of": [value paths]}."""
    words = expr.split()
    op = {"and": "all_of", "or": "any_of", "not": "none_of"}.get(words[0], "all_of")
    args = words[1:] if words[0] in ("and", "or", "not") else words
    paths = [m.group(1) for a in args if (m := _VALUE.fullmatch(a))]
    if not paths or len(paths) != len(args) or (op == "none_of" and len(paths) != 1):
        raise FactsError(f"a condition the generator does not read: {expr!r}")
    return {op: paths}


def _paths_of(cond: dict) -> list[str]:
    return next(iter(cond.values()))


def prune(values: dict, paths: list[str]) -> dict:
    """values with only the given dotted paths (each kept whole), those that exist."""
    out: dict = {}
    for path in paths:
        node, keys = values, path.split(".")
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                break
            node = node[k]
        else:
            target = out
            for k in keys[:-1]:
                target = target.setdefault(k, {})
            target[keys[-1]] = node
    return out


@dataclass(frozen=True)
class Source:
    """One chart version's provenance row: directory `<name>-<version>`, repository, tag, commit, path."""

    directory: str
    repository: str
    tag: str
    commit: str
    path: str

    @property
    def name(self) -> str:
        return self.directory.rpartition("-")[0]

    @property
    def version(self) -> str:
        return self.directory.rpartition("-")[2]


def read_provenance(file: Path) -> list[Source]:
    """The provenance table: a PROVENANCE.md (`| directory | repository | tag | commit | path … |` rows; the path may
    end in `/{file,…}`) or a facts JSON (its charts' `source` entries)."""
    if file.suffix == ".json":
        charts = json.loads(file.read_text())["charts"]
        return [
            Source(f"{name}-{version}", **facts["source"])
            for name, versions in charts.items()
            for version, facts in versions.items()
        ]
    rows = []
    for line in file.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[0-9a-f]{40}", cells[3]):
            directory, repository, tag, commit, path = cells
            rows.append(Source(directory, repository, tag, commit, path.split("/{")[0].rstrip("/")))
    if not rows:
        raise FactsError(f"{file}: no provenance rows (| directory | repository | tag | commit | path |)")
    return rows


class Tree:
    """Chart files in a directory laid out <name>-<version>/<file> (kube-prometheus-stack-*/crds.list)."""

    def __init__(self, root: Path):
        self.root = root

    def read(self, src: Source, file: str) -> str:
        path = self.root / src.directory / file
        if not path.is_file():
            raise FactsError(f"{path}: missing")
        return path.read_text()

    def listing(self, src: Source, directory: str) -> list[str]:
        return self.read(src, "crds.list").split()


class Git:
    """Chart files read from the upstream repositories' git directories at each row's commit."""

    def __init__(self, git_dirs: dict[str, Path]):
        self.git_dirs = git_dirs

    def _git(self, src: Source, *args: str) -> str:
        if src.repository not in self.git_dirs:
            raise FactsError(f"{src.directory}: no --git {src.repository}=GIT_DIR given")
        done = subprocess.run(
            ["git", "--git-dir", str(self.git_dirs[src.repository]), *args], capture_output=True, text=True
        )
        if done.returncode:
            raise FactsError(f"{src.directory}: git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def read(self, src: Source, file: str) -> str:
        return self._git(src, "show", f"{src.commit}:{src.path}/{file}")

    def listing(self, src: Source, directory: str) -> list[str]:
        out = self._git(src, "ls-tree", "--name-only", f"{src.commit}:{src.path}/{directory}")
        return sorted(out.split())


def chart_facts(files: Tree | Git, src: Source) -> dict:
    meta = yaml.safe_load(files.read(src, "Chart.yaml"))
    if (meta.get("name"), str(meta.get("version"))) != (src.name, src.version):
        raise FactsError(f"{src.directory}: its Chart.yaml is {meta.get('name')} {meta.get('version')}")
    head = {
        "name": meta["name"],
        "version": str(meta["version"]),
        "appVersion": str(meta["appVersion"]),
        "source": {"repository": src.repository, "tag": src.tag, "commit": src.commit, "path": src.path},
    }
    facts: dict = {}  # what this chart adds
    conditions: list[dict] = []
    if src.name == "cluster-autoscaler":
        facts["rbac"] = {}
        for kind, template in RBAC_TEMPLATES.items():
            text = files.read(src, template)
            doc = yaml.safe_load(render(text, RBAC_TRUE))
            if not isinstance(doc, dict) or doc.get("kind") != kind:
                raise FactsError(f"{src.directory}/{template}: does not render a {kind}")
            conditions.append(cond := condition(guard(text)))
            facts["rbac"][kind] = {"when": cond, "rules": doc["rules"]}
    if src.name == "kube-prometheus-stack":
        dep = next((d for d in meta.get("dependencies", []) if d["name"] == "crds"), None)
        if not dep or "," in dep.get("condition", ","):
            raise FactsError(f"{src.directory}: no crds dependency with one condition in its Chart.yaml")
        conditions.append(cond := condition(f".Values.{dep['condition']}"))
        facts["crds"] = {"when": cond, "files": files.listing(src, CRDS_DIR)}
    if src.name == "prometheus-adapter":
        facts["objects"] = {}
        for kind, template in ADAPTER_TEMPLATES.items():
            text = files.read(src, template)
            when = guard(text)
            conditions.append(cond := condition(when))
            obj: dict = {"template": template, "when": cond}
            if kind == "APIService":
                doc = yaml.safe_load(render(text, {when, *ADAPTER_TRUE}))
                if not isinstance(doc, dict) or doc.get("kind") != kind:
                    raise FactsError(f"{src.directory}/{template}: does not render an {kind}")
                obj |= {
                    "name": doc["metadata"]["name"],
                    "group": doc["spec"]["group"],
                    "version": doc["spec"]["version"],
                }
            elif f"kind: {kind}" not in render(text, {when}).splitlines():
                raise FactsError(f"{src.directory}/{template}: does not render a {kind}")
            facts["objects"][kind] = obj
    paths = list(dict.fromkeys(VALUE_PATHS.get(src.name, []) + [p for c in conditions for p in _paths_of(c)]))
    values = prune(yaml.safe_load(files.read(src, "values.yaml")) or {}, paths)
    return {**head, "value_paths": paths, "values": values, **facts}


def generate(files: Tree | Git, sources: list[Source]) -> dict:
    charts: dict = {}
    for src in sorted(sources, key=lambda s: (s.name, tuple(int(p) for p in s.version.split(".")))):
        charts.setdefault(src.name, {})[src.version] = chart_facts(files, src)
    return {
        "about": "Facts read from upstream Helm charts by devtools/chart_facts.py (see its docstring to regenerate); "
        "data, not the charts. Do not edit by hand.",
        "charts": charts,
    }


def dump(facts: dict) -> str:
    return json.dumps(facts, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.chart_facts", description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="?", type=Path, default=DEFAULT_SOURCES, help="chart directory tree")
    ap.add_argument("--git", action="append", default=[], metavar="OWNER/NAME=GIT_DIR", help="read from git")
    ap.add_argument("--provenance", type=Path, help="PROVENANCE.md or facts JSON (default: SOURCES/PROVENANCE.md)")
    ap.add_argument("--out", type=Path, default=OUTPUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args(argv)
    try:
        git_dirs = dict(g.split("=", 1) for g in args.git)
    except ValueError:
        ap.error("--git takes OWNER/NAME=GIT_DIR")
    try:
        sources = read_provenance(args.provenance or args.sources / "PROVENANCE.md")
        files = Git({k: Path(v) for k, v in git_dirs.items()}) if git_dirs else Tree(args.sources)
        text = dump(generate(files, sources))
    except (FactsError, OSError) as e:
        print(f"chart_facts: {e}", file=sys.stderr)
        return 2
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out}: {'identical to' if same else 'DIFFERS from'} the generated facts")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(sources)} chart versions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
