/* modelsvc console: Deploy, Scale and Delete. Each opens a pull request on GitHub that edits services.yaml
 * (POST /console/api/actions/...); the pages then follow it (GET /console/api/pending...) until it is live.
 * With the actions off (no --github-repo on the gateway) nothing here shows: the pages keep today's commands.
 * Same rules as console.js: data goes in with textContent / properties only, the key only in the Bearer header. */
(function () {
  "use strict";

  var C = window.modelsvcConsole;
  if (!C) return;
  var el = C.el;
  var page = document.body.getAttribute("data-page");
  var pollMs = parseInt(document.body.getAttribute("data-poll-ms"), 10) || 3000;
  var config = null;     // GET /console/api/actions
  var service = null;    // the detail page's service
  var pending = [];      // its (or the owner's) pending pull requests

  function $(id) { return document.getElementById(id); }

  function post(path, body) {
    return fetch(path, {
      method: "POST", cache: "no-store", credentials: "omit",
      headers: { "Authorization": "Bearer " + (C.getKey() || ""), "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (data) {
        if (!r.ok) {
          var e = new C.ApiError(data && data.error ? data.error.message : "HTTP " + r.status, r.status);
          e.param = data && data.error ? data.error.param : null;
          e.problems = data && data.problems ? data.problems : [];
          throw e;
        }
        return data;
      });
    });
  }

  function encoded(name) { return name.split("/").map(encodeURIComponent).join("/"); }

  function status(message, link) {
    var box = $("action-status");
    box.replaceChildren(message);
    if (link) {
      box.append(" ", el("a", { href: link.url, target: "_blank", rel: "noopener noreferrer", text: link.text }));
    }
    box.hidden = false;
  }

  // -- forms: errors beside their field, located problems above --------------------------------------------------
  function clearErrors(prefix) {
    document.querySelectorAll('[id^="' + prefix + '-"][id$="-error"]').forEach(function (n) { n.textContent = ""; });
    var list = $(prefix + "-problems");
    if (list) list.replaceChildren();
    document.querySelectorAll("#" + prefix + "-form [aria-invalid]").forEach(function (n) {
      n.removeAttribute("aria-invalid");
    });
  }

  function showError(prefix, err, fieldMap) {
    var field = fieldMap[err.param] || err.param;
    var target = field ? $(prefix + "-" + field + "-error") : null;
    // beside the field: what is wrong there (its located problem, else the first), not the refusal's header line
    var problems = err.problems || [];
    var mine = problems.filter(function (p) { return p.field === err.param; })[0];
    var first = mine ? mine.message
      : problems.length ? "Refused: see the problem above." : err.message.split("\n")[0];
    if (target) {
      target.textContent = first;
      var input = document.querySelector('[aria-describedby~="' + target.id + '"]');
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    }
    var list = $(prefix + "-problems");
    var items = (err.problems || []).map(function (p) {
      return el("li", { "data-field": p.field || "", text: p.located || p.message });
    });
    if (!target && !items.length) items = [el("li", { text: err.message })];
    list.replaceChildren.apply(list, items);
  }

  function busy(button, on) { button.disabled = on; button.setAttribute("aria-busy", on ? "true" : "false"); }

  function opened(prefix, dialog, pr) {
    dialog.close();
    status("Pull request #" + pr.number + " opened: " + pr.title + ". It changes nothing until it is reviewed, " +
           "approved, merged and deployed.", { url: pr.url, text: "Open it on GitHub" });
    C.announce("Pull request " + pr.number + " opened");
    refreshPending(true);
  }

  function wireDialog(dialog) {
    dialog.querySelectorAll("[data-close]").forEach(function (b) {
      b.addEventListener("click", function () { dialog.close(); });
    });
  }

  // -- Deploy (list page) ----------------------------------------------------------------------------------------
  function setupDeploy() {
    var dialog = $("deploy-dialog"), form = $("deploy-form");
    wireDialog(dialog);
    var models = $("deploy-model"), pools = $("deploy-pool");
    models.replaceChildren.apply(models, config.models.map(function (m) {
      return el("option", { value: m.name, text: m.name + " (" + m.task + ", " + m.gpus + " GPU" +
                            (m.gpus === 1 ? "" : "s") + (m.needs_pool ? "" : ", served elsewhere") + ")" });
    }));
    function syncPool() {
      var m = config.models.filter(function (x) { return x.name === models.value; })[0];
      var options = (m && m.needs_pool ? [] : [el("option", { value: "", text: "none (not on GPUs here)" })])
        .concat(m && m.needs_pool ? config.pools.map(function (p) {
          return el("option", { value: p.name, text: p.name + " (" + p.instance_type + ")" });
        }) : []);
      pools.replaceChildren.apply(pools, options);
      pools.disabled = !(m && m.needs_pool);
    }
    function syncAccess() {
      var slug = $("deploy-name").value.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "")
        .slice(0, 40).replace(/-+$/, "") || "service";
      $("deploy-access-default").textContent = config.owner + "/" + slug;
    }
    models.addEventListener("change", syncPool);
    $("deploy-name").addEventListener("input", syncAccess);
    $("deploy-autoscale").addEventListener("change", function () {
      $("deploy-max-row").hidden = !$("deploy-autoscale").checked;
    });
    syncPool();
    syncAccess();
    $("deploy-open").hidden = false;
    $("deploy-open").addEventListener("click", function () { clearErrors("deploy"); dialog.showModal(); });
    form.addEventListener("input", function () { clearErrors("deploy"); });  // a changed form: the old refusal goes
    form.addEventListener("change", function () { clearErrors("deploy"); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors("deploy");
      var body = { name: $("deploy-name").value.trim(), model: models.value,
                   instances: parseInt($("deploy-instances").value, 10) };
      if (pools.value) body.pool = pools.value;
      if ($("deploy-access").value.trim()) body.access_name = $("deploy-access").value.trim();
      if ($("deploy-autoscale").checked) body.max_instances = parseInt($("deploy-max").value, 10);
      if (isNaN(body.instances)) body.instances = -1;  // the server says what is wrong with it
      var button = $("deploy-submit");
      busy(button, true);
      post("/console/api/actions/deploy", body).then(function (pr) { opened("deploy", dialog, pr); }, function (err) {
        if (C.onAuthError(err)) return;
        showError("deploy", err, {});
      }).then(function () { busy(button, false); });
    });
  }

  // -- Scale and Delete (detail page) ----------------------------------------------------------------------------
  function setupServiceActions() {
    var scaleDialog = $("scale-dialog"), deleteDialog = $("delete-dialog");
    wireDialog(scaleDialog);
    wireDialog(deleteDialog);
    $("changes").hidden = false;
    $("commands").hidden = true;
    $("changes-repo").textContent = config.repository + " (" + config.base + ")";
    $("service-menu").hidden = false;
    var menu = $("menu-items"), menuButton = $("menu-button");
    function closeMenu() { menu.hidden = true; menuButton.setAttribute("aria-expanded", "false"); }
    menuButton.addEventListener("click", function () {
      var open = menu.hidden;
      menu.hidden = !open;
      menuButton.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) $("menu-scale").focus();
    });
    menu.addEventListener("keydown", function (ev) {
      var items = [$("menu-scale"), $("menu-delete")], i = items.indexOf(document.activeElement);
      if (ev.key === "Escape") { closeMenu(); menuButton.focus(); }
      else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        items[(i + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
      }
    });
    document.addEventListener("click", function (ev) {
      if (!$("service-menu").contains(ev.target)) closeMenu();
    });

    function openScale() {
      closeMenu();
      clearErrors("scale");
      var s = service;
      $("scale-service").textContent = s.name;
      $("scale-auto").hidden = !s.autoscaled;
      $("scale-fixed").hidden = !!s.autoscaled;
      $("scale-now").textContent = s.autoscaled
        ? "Now: between " + s.instances_min + " and " + s.instances_max + " instances (autoscaled)."
        : "Now: " + s.instances + " instance" + (s.instances === 1 ? "" : "s") + ".";
      $("scale-min").value = String(s.instances_min);
      $("scale-max").value = String(s.instances_max);
      $("scale-count").value = "1";
      scaleDialog.showModal();
    }
    function openDelete() {
      closeMenu();
      clearErrors("delete");
      $("delete-service").textContent = service.name;
      $("delete-name").textContent = service.access_name;
      $("delete-confirm").value = "";
      $("delete-submit").disabled = true;
      deleteDialog.showModal();
    }
    $("menu-scale").addEventListener("click", openScale);
    $("scale-open").addEventListener("click", openScale);
    $("menu-delete").addEventListener("click", openDelete);
    $("delete-open").addEventListener("click", openDelete);
    $("delete-confirm").addEventListener("input", function () {
      $("delete-submit").disabled = $("delete-confirm").value !== service.access_name;
    });

    $("scale-form").addEventListener("input", function () { clearErrors("scale"); });
    $("scale-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors("scale");
      var body;
      if (service.autoscaled) {
        body = { to: parseInt($("scale-min").value, 10), max_instances: parseInt($("scale-max").value, 10) };
      } else {
        var mode = document.querySelector('input[name="scale-mode"]:checked').value;
        body = {};
        body[mode] = parseInt($("scale-count").value, 10);
      }
      Object.keys(body).forEach(function (k) { if (isNaN(body[k])) body[k] = null; });
      var button = $("scale-submit");
      busy(button, true);
      post("/console/api/actions/scale/" + encoded(service.access_name), body).then(function (pr) {
        opened("scale", scaleDialog, pr);
      }, function (err) {
        if (C.onAuthError(err)) return;
        // a fixed service's count is one field; an autoscaled one's minimum is the "instances" of the edit
        showError("scale", err, service.autoscaled ? { instances: "min", to: "min" } : { to: "instances", add: "instances" });
      }).then(function () { busy(button, false); });
    });

    $("delete-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors("delete");
      var button = $("delete-submit");
      busy(button, true);
      post("/console/api/actions/delete/" + encoded(service.access_name), { confirm: $("delete-confirm").value })
        .then(function (pr) { opened("delete", deleteDialog, pr); }, function (err) {
          if (C.onAuthError(err)) return;
          showError("delete", err, {});
        }).then(function () { button.disabled = $("delete-confirm").value !== service.access_name; });
    });
  }

  // -- pending pull requests ------------------------------------------------------------------------------------
  var GATE = { success: "passed", failure: "failed", cancelled: "cancelled", timed_out: "timed out",
               action_required: "action required", neutral: "neutral", skipped: "skipped" };

  function pendingItem(p, withDetails) {
    var li = el("li", { "data-number": p.number, "data-stage": p.stage }, [
      el("a", { href: p.url, target: "_blank", rel: "noopener noreferrer", text: "#" + p.number + " " + p.title }),
      el("span", { "class": "stage stage-" + p.stage, text: p.stage_text })
    ]);
    if (withDetails && p.state === "open") {
      var gate = !p.gate_visible ? "not visible to this gateway (its App has no Checks: read); see the pull request"
        : !p.gate ? "not reported yet"
        : p.gate.status !== "completed" ? p.gate.status.replace("_", " ")
        : GATE[p.gate.conclusion] || p.gate.conclusion;
      li.append(el("dl", { "class": "pr-facts" }, [
        el("div", null, [el("dt", { text: "Gate" }), el("dd", { "data-field": "gate", text: gate })]),
        el("div", null, [el("dt", { text: "Review" }),
                         el("dd", { "data-field": "review", text: p.review || "no review comment yet" })])
      ]));
    }
    if (p.details_error) li.append(el("p", { "class": "muted", text: "Review status unavailable: " + p.details_error }));
    if (p.merged_at) li.append(el("p", { "class": "muted", text: "Merged " + new Date(p.merged_at).toLocaleString() }));
    return li;
  }

  function renderPending() {
    if (page === "detail") {
      var list = $("pending-service");
      list.replaceChildren.apply(list, pending.length ? pending.map(function (p) { return pendingItem(p, true); })
        : [el("li", { "class": "muted", text: "none: the service runs what services.yaml on " + config.base + " says" })]);
      var blocking = pending.filter(function (p) { return p.blocking; })[0];
      $("scale-open").disabled = $("delete-open").disabled = !!blocking;
      $("menu-scale").disabled = $("menu-delete").disabled = !!blocking;
      $("changes-blocked").hidden = !blocking;
      $("changes-blocked").textContent = blocking ? "A change is pending (pull request #" + blocking.number +
        "): a new one can be asked for once it is live or closed." : "";
    } else {
      var items = $("pending-items");
      $("pending-list").hidden = !pending.length;
      items.replaceChildren.apply(items, pending.map(function (p) {
        var li = pendingItem(p, false);
        li.prepend(el("code", { text: p.access_name }), " ");
        return li;
      }));
    }
  }

  var lastPending = 0;
  function refreshPending(now) {
    if (!config || !config.enabled) return;
    if (!now && Date.now() - lastPending < pollMs / 2) return;  // at most once per page poll
    lastPending = Date.now();
    var path = page === "detail" ? "/console/api/pending/" + encoded(service.access_name) : "/console/api/pending";
    return C.api(path).then(function (data) { pending = data.data; renderPending(); }, function (err) {
      C.onAuthError(err);
    });
  }

  function init(kind) {
    if (config) { refreshPending(false); return; }
    config = {};
    C.api("/console/api/actions").then(function (c) {
      config = c;
      if (!c.enabled) return;  // off or unavailable: the commands stay
      if (kind === "list") setupDeploy(); else setupServiceActions();
      refreshPending(true);
    }, function () { config = null; });
  }

  document.addEventListener("modelsvc:list", function () { if (page === "list") init("list"); });
  document.addEventListener("modelsvc:service", function (ev) { service = ev.detail; init("service"); });
})();
