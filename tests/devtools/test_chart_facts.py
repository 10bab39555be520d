"""devtools/chart_facts.py, on small charts written here in the upstream charts' shape (not their text): what it
renders, which conditions it reads, what it keeps of values.yaml, and that a directory tree and a git repository at
the provenance commit give the same bytes."""

from __future__ import annotations

import json
import subprocess

import pytest

from devtools import chart_facts
from devtools.chart_facts import FactsError, condition, guard, prune, render

CLUSTERROLE = """\
{{- if and .Values.rbac.create .Values.rbac.clusterScoped -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
{{- with .Values.rbac.annotations }}
  annotations:
  {{- range $k, $v := . }}
    {{ $k }}: {{ $v }}
  {{- end }}
{{- end }}
  name: {{ template "fullname" . }}
rules:
{{- if (eq .Values.cloudProvider "other") }}
  - apiGroups: [other.example.com]
    resources: [things]
    verbs: [get]
{{- end }}
  - apiGroups: [""]
    resources: [nodes]
    verbs:
    - list
{{- if .Values.rbac.extraVerbs }}
    - patch
{{- else }}
    - watch
{{- end }}
{{- if .Values.rbac.additionalRules }}
{{ toYaml .Values.rbac.additionalRules | indent 2 }}
{{- end }}
{{- end -}}
"""
ROLE = """\
{{- if .Values.rbac.create -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ template "fullname" . }}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [create]
{{- end -}}
"""
VALUES = """\
cloudProvider: aws
awsRegion: ""
autoDiscovery:
  clusterName:  # set it
  tags: [a, b]
rbac:
  create: true
  clusterScoped: true
  serviceAccount: {create: true, name: "", annotations: {}}
extraArgs: {v: 4}
unrelated: {big: map}
"""


def _write_tree(root):
    chart = root / "cluster-autoscaler-1.2.3"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: cluster-autoscaler\nversion: 1.2.3\nappVersion: 1.33.0\n")
    (chart / "values.yaml").write_text(VALUES)
    (chart / "templates" / "clusterrole.yaml").write_text(CLUSTERROLE)
    (chart / "templates" / "role.yaml").write_text(ROLE)
    row = ["cluster-autoscaler-1.2.3", "example/charts", "cluster-autoscaler-chart-1.2.3", "0" * 40]
    (root / "PROVENANCE.md").write_text(
        "| directory | repository | tag | commit | path in the repository |\n| --- | --- | --- | --- | --- |\n"
        f"| {' | '.join(row)} | charts/ca/{{Chart.yaml,values.yaml}} |\n"
    )
    return chart


def test_render_keeps_only_what_holds_for_our_values():
    doc = render(CLUSTERROLE, {"and .Values.rbac.create .Values.rbac.clusterScoped"})
    assert "other.example.com" not in doc and "annotations" not in doc and "toYaml" not in doc
    assert "name: x" in doc  # an expression inside a line: a placeholder
    assert "- watch" in doc and "- patch" not in doc  # `else` of a false `if`
    assert render(CLUSTERROLE, set()) == ""  # the outer guard false: nothing


def test_guard_and_condition_read_the_wrapping_if():
    assert condition(guard(CLUSTERROLE)) == {"all_of": ["rbac.create", "rbac.clusterScoped"]}
    assert condition("or .Values.rules.default .Values.rules.custom") == {"any_of": ["rules.default", "rules.custom"]}
    assert condition("not .Values.rules.existing") == {"none_of": ["rules.existing"]}
    assert condition(".Values.rbac.create") == {"all_of": ["rbac.create"]}
    for unread in ('eq .Values.cloudProvider "aws"', "not (or .Values.a .Values.b)", "and .Values.a true"):
        with pytest.raises(FactsError):
            condition(unread)
    with pytest.raises(FactsError, match="ends before"):
        guard("{{- if .Values.a }}\nkind: A\n{{- end }}\nkind: B\n")
    with pytest.raises(FactsError, match="does not start"):
        guard("kind: A\n")


def test_prune_keeps_the_paths_whole_and_only_those_that_exist():
    values = {"a": {"b": {"c": 1, "d": [2]}, "e": None}, "f": {"g": 3}}
    assert prune(values, ["a.b", "a.e", "a.x", "f.g.h", "z"]) == {"a": {"b": {"c": 1, "d": [2]}, "e": None}}


def test_a_tree_gives_the_facts(tmp_path):
    _write_tree(tmp_path)
    out = tmp_path / "facts.json"
    assert chart_facts.main([str(tmp_path), "--out", str(out)]) == 0
    facts = json.loads(out.read_text())["charts"]["cluster-autoscaler"]["1.2.3"]
    assert (facts["name"], facts["version"], facts["appVersion"]) == ("cluster-autoscaler", "1.2.3", "1.33.0")
    assert facts["source"] == {
        "repository": "example/charts",
        "tag": "cluster-autoscaler-chart-1.2.3",
        "commit": "0" * 40,
        "path": "charts/ca",
    }
    assert facts["rbac"]["ClusterRole"] == {
        "when": {"all_of": ["rbac.create", "rbac.clusterScoped"]},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}],
    }
    assert facts["rbac"]["Role"]["when"] == {"all_of": ["rbac.create"]}
    assert facts["values"]["autoDiscovery"] == {"clusterName": None}  # pruned: tags not looked up
    assert "unrelated" not in facts["values"] and "pspEnabled" not in facts["values"]["rbac"]  # absent upstream
    assert "rbac.pspEnabled" in facts["value_paths"]
    assert "{{" not in out.read_text()  # data, never template text
    assert chart_facts.main([str(tmp_path), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("1.33.0", "1.33.1"))
    assert chart_facts.main([str(tmp_path), "--out", str(out), "--check"]) == 1


def test_a_chart_in_another_shape_is_refused(tmp_path, capsys):
    chart = _write_tree(tmp_path)
    (chart / "templates" / "role.yaml").write_text(ROLE.replace("kind: Role", "kind: RoleBinding"))
    assert chart_facts.main([str(tmp_path), "--out", str(tmp_path / "f.json")]) == 2
    assert "does not render a Role" in capsys.readouterr().err
    (chart / "Chart.yaml").write_text("name: cluster-autoscaler\nversion: 1.2.4\nappVersion: x\n")
    assert chart_facts.main([str(tmp_path), "--out", str(tmp_path / "f.json")]) == 2
    assert "its Chart.yaml is cluster-autoscaler 1.2.4" in capsys.readouterr().err


@pytest.mark.e2e  # runs git
def test_a_git_repository_at_the_commit_gives_the_same_bytes(tmp_path):
    tree = tmp_path / "tree"
    chart = _write_tree(tree)
    repo = tmp_path / "repo"
    (repo / "charts").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(chart), str(repo / "charts" / "ca")], check=True)

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "chart")
    commit = git("rev-parse", "HEAD")
    (repo / "charts" / "ca" / "values.yaml").write_text("cloudProvider: gce\n")  # later work: not what is read
    git("commit", "-q", "-am", "later")
    md = tree / "PROVENANCE.md"
    md.write_text(md.read_text().replace("0" * 40, commit))
    from_tree, from_git = tmp_path / "a.json", tmp_path / "b.json"
    assert chart_facts.main([str(tree), "--out", str(from_tree)]) == 0
    git_dir = f"example/charts={repo / '.git'}"
    assert chart_facts.main(["--provenance", str(md), "--git", git_dir, "--out", str(from_git)]) == 0
    assert from_git.read_bytes() == from_tree.read_bytes()
    # and the committed facts carry the table: regenerating from them needs no PROVENANCE.md
    assert chart_facts.main(["--provenance", str(from_tree), "--git", git_dir, "--out", str(from_tree), "--check"]) == 0
