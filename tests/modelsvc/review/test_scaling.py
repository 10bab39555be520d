"""The review's autoscaling section: min → max GPUs per pool and the worst-case change."""

from __future__ import annotations

from modelsvc.catalog import loads
from modelsvc.review import review
from tests.conftest import ROOT

HEAD = (ROOT / "services.yaml").read_text()
AUTOSCALE = (
    "    autoscale:                  # instances stays the minimum; an HPA adds pods on Triton's queue/compute ratio\n"
    "      max_instances: 4\n"
)
assert AUTOSCALE in HEAD
BASE = HEAD.replace(AUTOSCALE, "    autoscale:\n      max_instances: 2\n")  # fixed at 2 in effect


def test_turning_autoscale_up_shows_min_max_and_worst_case():
    md = review(loads(BASE), loads(HEAD)).markdown
    assert "### Autoscaling" in md
    assert "- `u-8105f7322477/support-bot`: instances 2–2 → 2–4 (+8 GPU(s) at peak)" in md
    assert "| `h100` | 9 → 9 | 9 → 17 | +8 | 32 |" in md
    assert "`l4`" not in md  # unchanged pools stay out


def test_target_change_is_listed_without_gpu_change():
    head = HEAD.replace("      target: 1.0 ", "      target: 0.5 ")
    md = review(loads(HEAD), loads(head)).markdown
    assert (
        "- `u-8105f7322477/support-bot`: instances 2–4; queue_ratio target 1 → queue_ratio target 0.5, "
        "scale down after 10m → 10m (+0 GPU(s) at peak)"
    ) in md
    assert "- GPUs per pool: no change" in md


def test_no_section_without_autoscaling():
    plain = HEAD.replace(AUTOSCALE, "").replace(
        "      target: 1.0               # queue time / compute time per instance "
        "(1: requests wait as long as they run)\n"
        "      scale_down_delay: 10m     # load must stay low this long before an instance is removed\n",
        "",
    )
    assert "autoscale" not in plain.split("services:")[1]
    assert "### Autoscaling" not in review(loads(plain), loads(plain)).markdown
