/* modelsvc console: the one script. No framework, no build step.
 * Security: every value from the server is put into the page with textContent / properties, never innerHTML.
 * The API key lives in sessionStorage only and is sent as the Bearer header to this same origin. */
(function () {
  "use strict";

  var KEY_STORE = "modelsvc.console.key";
  var MAX_IMAGE_BYTES = 3 * 1024 * 1024;
  var STATUS_TEXT = { running: "Running", degraded: "Degraded", unavailable: "Unavailable" };
  var body = document.body;
  var pollMs = parseInt(body.getAttribute("data-poll-ms"), 10) || 3000;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined) return;
        if (k === "text") node.textContent = String(v);
        else if (k === "class") node.className = v;
        else node.setAttribute(k, String(v));
      });
    }
    (children || []).forEach(function (c) { node.append(c); });  // strings become text nodes
    return node;
  }

  function announce(msg) {
    var a = $("announcer");
    a.textContent = "";
    window.setTimeout(function () { a.textContent = msg; }, 50);
  }

  // -- key and API ---------------------------------------------------------------------------------------------
  function getKey() {
    try { return window.sessionStorage.getItem(KEY_STORE); } catch (e) { return null; }
  }
  function setKey(k) {
    try { if (k) window.sessionStorage.setItem(KEY_STORE, k); else window.sessionStorage.removeItem(KEY_STORE); }
    catch (e) { /* storage disabled: the key is simply not kept */ }
  }

  function ApiError(message, status) { this.message = message; this.status = status; }

  function api(path, key) {
    return fetch(path, { headers: { "Authorization": "Bearer " + (key || getKey() || "") }, cache: "no-store",
                         credentials: "omit" })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (data) {
          if (!r.ok) {
            var msg = data && data.error && data.error.message ? data.error.message : "HTTP " + r.status;
            throw new ApiError(msg, r.status);
          }
          return data;
        });
      });
  }

  function statusBadge(node, status) {
    node.textContent = STATUS_TEXT[status] || status;
    node.className = "badge status-" + (STATUS_TEXT[status] ? status : "unknown");
    node.setAttribute("data-status", status);
  }

  function instancesText(s) {
    return s.instances_ready + " of " + s.instances_total + " ready" +
      (s.instances !== s.instances_total ? " (" + s.instances + " declared)" : "");
  }

  function detailHref(accessName) {
    return "/console/services/" + accessName.split("/").map(encodeURIComponent).join("/");
  }

  // what console-actions.js (the Deploy / Scale / Delete pull requests) uses of this script
  window.modelsvcConsole = { api: api, el: el, announce: announce, getKey: getKey, ApiError: ApiError,
                             onAuthError: function (err) { return onAuthError(err); }, detailHref: detailHref };
  function loaded(kind, data) { document.dispatchEvent(new CustomEvent("modelsvc:" + kind, { detail: data })); }

  // -- sign in / out -------------------------------------------------------------------------------------------
  var started = false;

  function showSignIn(message) {
    setKey(null);
    $("main").hidden = true;
    $("account").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").textContent = message || "";
    $("api-key").focus();
  }

  function signedIn(owner) {
    $("sign-in").hidden = true;
    $("account").hidden = false;
    $("account-owner").textContent = owner;
    $("main").hidden = false;
  }

  function onAuthError(err) {
    if (err && err.status === 401) { showSignIn("Your API key was not accepted. Sign in again."); return true; }
    return false;
  }

  $("sign-in-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var key = $("api-key").value.trim();
    if (!key) return;
    $("sign-in-error").textContent = "";
    api("/console/api/services", key).then(function (data) {
      setKey(key);
      $("api-key").value = "";
      signedIn(data.owner);
      start(data);
      $("main").focus();
    }, function (err) {
      $("sign-in-error").textContent = err.status === 401 ? "That API key was not accepted." : err.message;
    });
  });

  $("sign-out").addEventListener("click", function () {
    setKey(null);
    window.location.assign("/console/");
  });

  function poller(fn) {
    window.setInterval(function () { if (!document.hidden && getKey()) fn(); }, pollMs);
    document.addEventListener("visibilitychange", function () { if (!document.hidden && getKey()) fn(); });
  }

  // -- list page -----------------------------------------------------------------------------------------------
  function renderList(data) {
    var tbody = $("services-body");
    var rows = data.data;
    $("empty").hidden = rows.length > 0;
    var existing = Array.prototype.map.call(tbody.rows, function (r) { return r.getAttribute("data-access-name"); });
    var same = existing.length === rows.length && rows.every(function (s, i) { return existing[i] === s.access_name; });
    if (!same) {
      tbody.replaceChildren.apply(tbody, rows.map(function (s) {
        var tr = el("tr", { "data-access-name": s.access_name });
        tr.append(el("th", { scope: "row" }, [el("a", { href: detailHref(s.access_name), text: s.name })]),
                  el("td", null, [el("code", { text: s.access_name })]),
                  el("td", { text: s.model }),
                  el("td", { "data-cell": "instances" }),
                  el("td", null, [el("span", { "data-cell": "status" })]));
        return tr;
      }));
    }
    rows.forEach(function (s, i) {
      var tr = tbody.rows[i];
      tr.querySelector('[data-cell="instances"]').textContent = instancesText(s);
      statusBadge(tr.querySelector('[data-cell="status"]'), s.status);
    });
    $("list-error").textContent = "";
    $("updated").textContent = "Status updated " + new Date().toLocaleTimeString();
    loaded("list", data);
  }

  function refreshList() {
    return api("/console/api/services").then(renderList, function (err) {
      if (!onAuthError(err)) $("list-error").textContent = "Could not refresh: " + err.message;
    });
  }

  // -- detail page ---------------------------------------------------------------------------------------------
  var service = null;

  function setFields(s) {
    var values = {
      name: s.name, access_name: s.access_name, id: s.id, model: s.model + " (" + s.task + ")",
      instances_text: instancesText(s), status_text: STATUS_TEXT[s.status] || s.status,
      pool_text: s.pool ? s.pool + (s.pool_instance_type ? " (" + s.pool_instance_type + ")" : "") :
        "none (" + s.backend + " backend)",
      key_env: s.key_env, key_command: s.key_command, public_url: s.public_url,
      instances_ready: String(s.instances_ready), instances_total: String(s.instances_total),
      instances_range: s.instances_min + "–" + s.instances_max,
      autoscale_text: s.autoscaled ? "on " + s.scale_metric + ", target " + s.scale_target + " per instance, scale down after " +
        s.scale_down_delay : "off (fixed instance count)"
    };
    document.querySelectorAll("[data-field]").forEach(function (node) {
      var k = node.getAttribute("data-field");
      if (Object.prototype.hasOwnProperty.call(values, k)) node.textContent = values[k];
    });
    statusBadge($("service-status-badge"), s.status);
  }

  function copyText(text) {
    function fallback() {
      var ta = el("textarea", { "class": "offscreen", readonly: "", "aria-hidden": "true", tabindex: "-1" });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      ta.remove();
      return ok;
    }
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; }, fallback);
    }
    return Promise.resolve(fallback());
  }

  function renderExamples(s) {
    var tabs = $("example-tabs"), panels = $("example-panels");
    tabs.replaceChildren();
    panels.replaceChildren();
    var tabButtons = [];
    s.examples.forEach(function (ex, i) {
      var tabId = "tab-" + ex.language, panelId = "panel-" + ex.language;
      var tab = el("button", { type: "button", role: "tab", id: tabId, "aria-controls": panelId,
                               "aria-selected": i === 0 ? "true" : "false", tabindex: i === 0 ? "0" : "-1",
                               "data-language": ex.language, text: ex.title });
      var code = el("code", { text: ex.code });
      var copy = el("button", { type: "button", "class": "secondary copy", "data-copy": ex.language,
                                "aria-label": "Copy the " + ex.title + " example", text: "Copy" });
      var panel = el("div", { role: "tabpanel", id: panelId, "aria-labelledby": tabId, "class": "example",
                              "data-language": ex.language }, [el("pre", { "class": "code" }, [code]), copy]);
      panel.hidden = i !== 0;
      copy.addEventListener("click", function () {
        copyText(ex.code).then(function (ok) {
          copy.textContent = ok ? "Copied" : "Copy failed";
          copy.setAttribute("data-state", ok ? "copied" : "failed");
          announce(ok ? ex.title + " example copied to the clipboard" : "Copy failed: select the code and copy it");
          window.setTimeout(function () { copy.textContent = "Copy"; copy.removeAttribute("data-state"); }, 2500);
        });
      });
      tab.addEventListener("click", function () { selectTab(i); });
      tab.addEventListener("keydown", function (ev) {
        var n = tabButtons.length, j = null;
        if (ev.key === "ArrowRight") j = (i + 1) % n;
        else if (ev.key === "ArrowLeft") j = (i - 1 + n) % n;
        else if (ev.key === "Home") j = 0;
        else if (ev.key === "End") j = n - 1;
        if (j !== null) { ev.preventDefault(); selectTab(j); tabButtons[j].focus(); }
      });
      tabButtons.push(tab);
      tabs.append(tab);
      panels.append(panel);
    });
    function selectTab(j) {
      tabButtons.forEach(function (t, k) {
        t.setAttribute("aria-selected", k === j ? "true" : "false");
        t.tabIndex = k === j ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = k !== j;
      });
    }
    $("example-response").textContent = s.example_response;
  }

  function renderScaling(s) {
    var list = $("scaling-events");
    if (!list || !s.scaling_events) return;
    list.replaceChildren.apply(list, s.scaling_events.length ? s.scaling_events.map(function (e) {
      var what = e.added && e.removed ? "+" + e.added + " / −" + e.removed : e.added ? "+" + e.added : "−" + e.removed;
      return el("li", { "data-to": e.to, text: new Date(e.at * 1000).toLocaleTimeString() + ": " + e.from + " → " +
                        e.to + " instances (" + what + ")" });
    }) : [el("li", { "class": "muted", text: "none since this gateway started" })]);
  }

  function renderActions(s) {
    var a = s.actions;
    function steps(id, items) { $(id).replaceChildren.apply($(id), items.map(function (t) { return el("li", { text: t }); })); }
    $("scale-command").textContent = a.scale.command;
    $("scale-note").textContent = a.scale.note;
    steps("scale-steps", a.scale.steps);
    $("delete-command").textContent = a["delete"].command;
    $("confirm-name").textContent = a.confirm_name;
    steps("delete-steps", a["delete"].steps);
  }

  function refreshDetail(first) {
    var name = $("main").getAttribute("data-access-name");
    return api("/console/api/services/" + name.split("/").map(encodeURIComponent).join("/")).then(function (s) {
      service = s;
      setFields(s);
      renderScaling(s);
      if (first) {
        document.title = s.name + " · modelsvc console";
        $("service-title").textContent = s.name;
        $("crumb-name").textContent = s.name;
        if (s.description) { $("service-description").textContent = s.description; $("service-description").hidden = false; }
        renderExamples(s);
        renderActions(s);
        setupTrial(s);
        $("detail").hidden = false;
      }
      $("detail-error").textContent = "";
      loaded("service", s);
    }, function (err) {
      if (onAuthError(err)) return;
      $("detail-error").textContent = (first ? "" : "Could not refresh: ") + err.message;
    });
  }

  // -- online trial: chat (streamed) ---------------------------------------------------------------------------
  var history = [];
  var inflight = null;

  function bubble(role, text) {
    var who = role === "user" ? "You" : role === "tool" ? "You (tool result)" : "Model";
    var b = el("div", { "class": "msg " + role }, [el("span", { "class": "who", text: who })]);
    var t = el("div", { "class": "text", text: text || "" });
    b.append(t);
    $("chat-log").append(b);
    return t;
  }

  function readAsDataURL(file) {
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () { resolve(r.result); };
      r.onerror = function () { reject(new Error("could not read the image")); };
      r.readAsDataURL(file);
    });
  }

  /* Server-sent events from a fetch body: yields each event's data string ("[DONE]" included). */
  function readSSE(response, onData) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buf = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buf += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
        var i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          var block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          var data = block.split("\n").filter(function (l) { return l.indexOf("data:") === 0; })
            .map(function (l) { return l.slice(5).replace(/^ /, ""); }).join("\n");
          if (data && onData(data) === false) { reader.cancel(); return; }
        }
        return pump();
      });
    }
    return pump();
  }

  function errorFrom(r) {
    return r.json().catch(function () { return null; }).then(function (d) {
      throw new ApiError(d && d.error && d.error.message ? d.error.message : "HTTP " + r.status, r.status);
    });
  }

  function setBusy(busy) {
    $("chat-send").disabled = busy;
    $("chat-stop").disabled = !busy;
    $("chat-log").setAttribute("aria-busy", busy ? "true" : "false");
  }

  function sendChat(ev) {
    ev.preventDefault();
    if (inflight) return;
    var text = $("chat-input").value.trim();
    if (!text) return;
    var fileInput = $("chat-image");
    var file = service.task === "vision-chat" && fileInput.files.length ? fileInput.files[0] : null;
    if (file && file.size > MAX_IMAGE_BYTES) { $("chat-usage").textContent = "The image is larger than 3 MB."; return; }
    var temperature = parseFloat($("chat-temperature").value);
    var maxTokens = parseInt($("chat-max-tokens").value, 10);
    var extra;
    try { extra = structuredOptions(); } catch (err) { $("chat-usage").textContent = err.message; return; }
    (file ? readAsDataURL(file) : Promise.resolve(null)).then(function (dataUrl) {
      var content = text;
      var last = history[history.length - 1];
      var pending = last && last.role === "assistant" && last.tool_calls ? last.tool_calls : null;
      var userText = bubble(pending ? "tool" : "user", text);
      if (dataUrl) {
        content = [{ type: "text", text: text }, { type: "image_url", image_url: { url: dataUrl } }];
        userText.parentNode.append(el("img", { "class": "thumb", src: dataUrl, alt: "Attached image" }));
        fileInput.value = "";
      }
      var added = pending  // after a tool call: the message is each call's result
        ? pending.map(function (c) { return { role: "tool", tool_call_id: c.id, content: text }; })
        : [{ role: "user", content: content }];
      added.forEach(function (m) { history.push(m); });
      $("chat-input").value = "";
      var answer = bubble("assistant", "");
      answer.parentNode.setAttribute("data-streaming", "true");
      var req = { model: service.access_name, messages: history, stream: true, stream_options: { include_usage: true } };
      if (!isNaN(temperature)) req.temperature = temperature;
      if (!isNaN(maxTokens)) req.max_tokens = maxTokens;
      Object.keys(extra).forEach(function (k) { req[k] = extra[k]; });
      var calls = [];
      var controller = new AbortController();
      inflight = controller;
      setBusy(true);
      $("chat-usage").textContent = "Generating…";
      var t0 = performance.now(), usage = null, finish = null, full = "";
      return fetch("/v1/chat/completions", {
        method: "POST", signal: controller.signal, cache: "no-store", credentials: "omit",
        headers: { "Authorization": "Bearer " + getKey(), "Content-Type": "application/json",
                   "Accept": "text/event-stream" },
        body: JSON.stringify(req)
      }).then(function (r) {
        if (!r.ok) return errorFrom(r);
        return readSSE(r, function (data) {
          if (data === "[DONE]") return false;
          var obj = JSON.parse(data);
          if (obj.error) throw new ApiError(obj.error.message, 0);
          var choice = obj.choices && obj.choices[0];
          if (choice && choice.delta && choice.delta.content) {
            full += choice.delta.content;
            answer.append(choice.delta.content);  // a text node: token by token
          }
          (choice && choice.delta && choice.delta.tool_calls || []).forEach(function (t) {
            var c = calls[t.index] || (calls[t.index] = { id: "", type: "function", function: { name: "", arguments: "" } });
            if (t.id) c.id = t.id;
            if (t.function && t.function.name) c.function.name = t.function.name;
            if (t.function && t.function.arguments) c.function.arguments += t.function.arguments;
            showCalls(answer, calls);
          });
          if (choice && choice.finish_reason) finish = choice.finish_reason;
          if (obj.usage) usage = obj.usage;
        });
      }).then(function () {
        var made = calls.filter(Boolean);
        history.push(made.length ? { role: "assistant", content: full || null, tool_calls: made }
                                 : { role: "assistant", content: full });
        var secs = ((performance.now() - t0) / 1000).toFixed(2);
        $("chat-usage").textContent = usage
          ? "Usage: " + usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion = " +
            usage.total_tokens + " tokens · " + secs + " s" + (finish ? " · finish: " + finish : "")
          : "Done in " + secs + " s (no usage reported)";
      }).catch(function (err) {
        added.forEach(function () { history.pop(); });  // the turn did not get an answer
        var aborted = err && err.name === "AbortError";
        answer.parentNode.classList.add("failed");
        answer.append(el("span", { "class": "error", text: aborted ? " [stopped]" : " [error: " + err.message + "]" }));
        $("chat-usage").textContent = aborted ? "Stopped." : "Error: " + err.message;
        if (err && err.status === 401) onAuthError(err);
      });
    }).catch(function (err) {
      $("chat-usage").textContent = "Error: " + err.message;
    }).then(function () {
      inflight = null;
      setBusy(false);
      var streaming = $("chat-log").querySelector('[data-streaming="true"]');
      if (streaming) streaming.removeAttribute("data-streaming");
    });
  }

  /* The trial's optional response format and tools (JSON typed in the form; an Error says what is wrong). */
  function structuredOptions() {
    var out = {}, schema = $("chat-schema").value.trim(), tools = $("chat-tools").value.trim();
    if (schema) {
      var parsed;
      try { parsed = JSON.parse(schema); } catch (e) { throw new Error("The JSON Schema is not JSON: " + e.message); }
      out.response_format = { type: "json_schema",
                              json_schema: { name: "trial", strict: $("chat-strict").checked, schema: parsed } };
    }
    if (tools) {
      var list;
      try { list = JSON.parse(tools); } catch (e) { throw new Error("The tools are not JSON: " + e.message); }
      if (!Array.isArray(list)) throw new Error("Tools must be a JSON array of function tools.");
      out.tools = list;
    }
    return out;
  }

  /* The tool calls of an answer, as they stream: one line per call, its name and arguments (text nodes only). */
  function showCalls(answer, calls) {
    var box = answer.parentNode.querySelector(".tool-calls");
    if (!box) { box = el("div", { "class": "tool-calls" }); answer.parentNode.append(box); }
    box.replaceChildren.apply(box, calls.filter(Boolean).map(function (c) {
      return el("pre", { "class": "code tool-call", text: "Tool call " + c.function.name + "(" + c.function.arguments + ")" });
    }));
  }

  // -- online trial: images ------------------------------------------------------------------------------------
  function generateImage(ev) {
    ev.preventDefault();
    var prompt = $("image-prompt").value.trim();
    if (!prompt) return;
    var btn = $("image-generate");
    btn.disabled = true;
    $("image-status").textContent = "Generating…";
    var started = performance.now();
    fetch("/v1/images/generations", {
      method: "POST", cache: "no-store", credentials: "omit",
      headers: { "Authorization": "Bearer " + getKey(), "Content-Type": "application/json" },
      body: JSON.stringify({ model: service.access_name, prompt: prompt, n: 1, response_format: "b64_json" })
    }).then(function (r) {
      if (!r.ok) return errorFrom(r);
      return r.json();
    }).then(function (data) {
      var b64 = data.data[0].b64_json;
      if (!/^[A-Za-z0-9+/=]+$/.test(b64)) throw new ApiError("unexpected image data", 0);
      var url = "data:image/png;base64," + b64;
      var img = $("image-output");
      img.src = url;
      img.alt = "Generated image for: " + prompt;
      $("image-download").href = url;
      $("image-result").hidden = false;
      $("image-status").textContent = "Generated in " + ((performance.now() - started) / 1000).toFixed(2) + " s";
    }).catch(function (err) {
      $("image-status").textContent = "Error: " + err.message;
      if (err && err.status === 401) onAuthError(err);
    }).then(function () { btn.disabled = false; });
  }

  function setupTrial(s) {
    if (s.task === "image-generation") {
      $("image-trial").hidden = false;
      $("image-form").addEventListener("submit", generateImage);
      return;
    }
    $("chat-trial").hidden = false;
    $("image-attach").hidden = s.task !== "vision-chat";
    var mt = $("chat-max-tokens");
    mt.max = String(s.max_output_tokens);
    if (parseInt(mt.value, 10) > s.max_output_tokens) mt.value = String(s.max_output_tokens);
    $("chat-form").addEventListener("submit", sendChat);
    $("chat-input").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("chat-form").requestSubmit(); }
    });
    $("chat-stop").addEventListener("click", function () { if (inflight) inflight.abort(); });
    $("chat-clear").addEventListener("click", function () {
      if (inflight) inflight.abort();
      history = [];
      $("chat-log").replaceChildren();
      $("chat-usage").textContent = "";
    });
  }

  // -- usage page: totals as text, charts as server-rendered SVG shown through blob: URLs (the key stays in a header)
  var chartUrls = {};

  function loadChart(img, path) {
    return fetch(path, { headers: { "Authorization": "Bearer " + (getKey() || "") }, cache: "no-store",
                         credentials: "omit" })
      .then(function (r) {
        if (!r.ok) throw new ApiError("HTTP " + r.status, r.status);
        return r.blob();
      })
      .then(function (blob) {
        var name = img.getAttribute("data-chart");
        if (chartUrls[name]) URL.revokeObjectURL(chartUrls[name]);
        chartUrls[name] = URL.createObjectURL(blob);
        img.src = chartUrls[name];
      });
  }

  function refreshUsage(first) {
    var name = $("main").getAttribute("data-access-name");
    var enc = name.split("/").map(encodeURIComponent).join("/");
    return api("/console/api/usage/" + enc).then(function (u) {
      var inv = u.invoice;
      var fmt = function (n) { return Number(n).toLocaleString("en-US"); };
      var values = { service_id: u.service_id, month: inv.month, requests: fmt(inv.requests),
                     prompt_tokens: fmt(inv.prompt_tokens), completion_tokens: fmt(inv.completion_tokens),
                     total_tokens: fmt(inv.total_tokens), images: fmt(inv.images), period: inv.from + " – " + inv.to };
      document.querySelectorAll("[data-field]").forEach(function (node) {
        var k = node.getAttribute("data-field");
        if (Object.prototype.hasOwnProperty.call(values, k)) node.textContent = values[k];
      });
      if (first) {
        document.title = "Usage · " + u.name + " · modelsvc console";
        $("usage-title").textContent = "Usage of " + u.name;
        $("crumb-service").textContent = u.name;
        $("usage").hidden = false;
      }
      $("usage-error").textContent = "";
      return Promise.all(Array.prototype.map.call(document.querySelectorAll("img[data-chart]"), function (img) {
        return loadChart(img, "/console/api/usage-chart/" + img.getAttribute("data-chart") + "/" + enc);
      })).then(function () { $("usage").setAttribute("data-loaded", "true"); });
    }).catch(function (err) {
      if (onAuthError(err)) return;
      $("usage-error").textContent = (first ? "" : "Could not refresh: ") + err.message;
    });
  }

  // -- start ---------------------------------------------------------------------------------------------------
  function start(listData) {
    if (started) return;
    started = true;
    if (body.getAttribute("data-page") === "list") {
      if (listData) renderList(listData); else refreshList();
      poller(refreshList);
    } else if (body.getAttribute("data-page") === "usage") {
      refreshUsage(true);
      window.setInterval(function () { if (!document.hidden && getKey()) refreshUsage(false); }, 30000);
    } else {
      refreshDetail(true);
      poller(function () { refreshDetail(false); });
    }
  }

  if (!getKey()) {
    showSignIn("");
    return;
  }
  api("/console/api/services").then(function (data) {
    signedIn(data.owner);
    start(data);
  }, function (err) {
    if (!onAuthError(err)) {
      signedIn("");
      $("main").hidden = false;
      var box = $("list-error") || $("detail-error") || $("usage-error");
      box.textContent = "Could not reach the gateway: " + err.message;
    }
  });
})();
