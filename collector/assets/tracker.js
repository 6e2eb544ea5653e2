/* edgeAnalytics: the browser tracker, served by the collector at GET /tracker.js. No dependencies.
 *
 * Load it in one of three ways:
 *   <script src="https://collector.example/tracker.js"></script>
 *   <script>edgeAnalytics.init({writeKey: "k"}); edgeAnalytics.track("add_to_cart", {sku: "A1"});</script>
 * or asynchronously, queueing calls until it has loaded (they are replayed, init first):
 *   <script>window.edgeAnalytics = window.edgeAnalytics || [];
 *           edgeAnalytics.push(["init", {writeKey: "k"}]);</script>
 *   <script async src="https://collector.example/tracker.js"></script>
 * or configured by the tag alone (data-write-key, data-endpoint or data-auto-init starts it):
 *   <script async src="https://collector.example/tracker.js" data-write-key="k"></script>
 *
 * init options: endpoint (default: where this script came from), writeKey, userId (the signed-in
 * user, if the page knows it), properties (added to every event), autoPageView (true),
 * batchSize (20), flushIntervalMs (2000), sessionTimeoutMs (30 min), maxQueue (1000).
 * API: init, track(name, properties), page(properties), identify(userId, traits), reset(), flush(),
 * userId(), anonymousId(), sessionId().
 *
 * Behaviour:
 * - init sends a page_view. Every event gets a client UUID event_id, so a batch sent twice is
 *   stored once (the database's key is (event_id, event_time)), and its own RFC 3339 event_time.
 * - session_id is kept per tab in sessionStorage, renewed after sessionTimeoutMs without events.
 * - Identity: every event carries anonymous_id, a random UUID v4 (crypto.randomUUID, else
 *   getRandomValues) kept in localStorage, so it survives reloads and visits. identify(userId,
 *   traits) — a string or an integer — keeps the user id in localStorage, adds it to every later
 *   event, and sends an "identify" event with both ids and the traits: the collector links the
 *   anonymous visitor to the user. init({userId}) does the same when that user is not already the
 *   identified one. reset() (call it on logout) forgets the user id and starts a new anonymous id
 *   and session. When storage is blocked (privacy modes, sandboxed frames) the ids live in memory
 *   for the page's lifetime.
 * - Events are batched to POST {endpoint}/v1/batch with a text/plain body (a CORS "simple"
 *   request: no preflight) and the write key as ?write_key= (sendBeacon cannot set headers).
 * - On 429, 5xx or a network error the batch goes back to the head of the queue and is retried
 *   after Retry-After when the browser lets us read it, else with exponential backoff (1 s to 60 s).
 *   Other 4xx mean the events can never be accepted: they are dropped with a console warning.
 * - When the page is hidden (visibilitychange) or left (pagehide) the queue, and any batch still
 *   in flight, leave with navigator.sendBeacon (fetch keepalive when the beacon is refused). A
 *   beacon's answer is invisible, so a beacon refused with 503 is lost: the last chance is best effort.
 */
(function (w, d) {
  "use strict";
  var existing = w.edgeAnalytics;
  if (existing && existing.version) return; // loaded twice
  var calls = Array.isArray(existing) ? existing.slice() : [];
  var script = d.currentScript;
  // USER_V1 held an invented integer user id (tracker version 1): adopted as the anonymous id.
  var SESSION = "edgeAnalytics.session", ANON = "edgeAnalytics.anonymousId",
    USER = "edgeAnalytics.userId", USER_V1 = "edgeAnalytics.user";
  var MAX_ID_BYTES = 256; // the collector's limits.max_string_bytes default
  var MAX_CHARS = 16000; // per request body: under the 64 KiB beacon/keepalive quota in UTF-8
  var cfg = null, queue = [], inflight = null, timer = 0, retryAt = 0, backoff = 0;
  var memory = {}; // stands in for storage that throws (privacy modes, sandboxed frames)

  function warn(msg) {
    if (w.console && console.warn) console.warn("edgeAnalytics: " + msg);
  }

  function load(area, key) {
    var v = null;
    try { v = w[area].getItem(key); } catch (e) { /* storage unavailable */ }
    return v === null ? memory[area + key] || null : v;
  }

  function save(area, key, value) { // null removes
    if (value === null) delete memory[area + key];
    else memory[area + key] = value;
    try {
      if (value === null) w[area].removeItem(key);
      else w[area].setItem(key, value);
    } catch (e) { /* keep it in memory */ }
  }

  function randomWords(n) {
    var a = new Uint32Array(n), c = w.crypto;
    if (c && c.getRandomValues) c.getRandomValues(a);
    else for (var i = 0; i < n; i++) a[i] = Math.floor(Math.random() * 4294967296);
    return a;
  }

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID(); // secure contexts only
    var r = randomWords(4), h = "";
    for (var i = 0; i < 4; i++) h += (r[i] + 4294967296).toString(16).slice(1);
    // RFC 4122 version 4, variant 10xx
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-4" + h.slice(13, 16) + "-" +
      "89ab"[r[2] >>> 30] + h.slice(17, 20) + "-" + h.slice(20);
  }

  function anonymousId() {
    var id = load("localStorage", ANON);
    if (!/^[\w.:-]{1,64}$/.test(id || "")) {
      id = load("localStorage", USER_V1);
      if (!/^\d{1,20}$/.test(id || "")) id = uuid();
      save("localStorage", ANON, id);
      save("localStorage", USER_V1, null);
    }
    return id;
  }

  // The identified user's id as it was given (an integer stays a number), or null.
  function userId() {
    var stored = load("localStorage", USER);
    if (!stored) return null;
    try { stored = JSON.parse(stored); } catch (e) { return null; }
    return validUserId(stored) ? stored : null;
  }

  function validUserId(id) {
    var text = typeof id === "number" ? (Number.isSafeInteger(id) ? String(id) : "") :
      typeof id === "string" ? id : "";
    // UTF-8 bytes, as the collector counts them
    return text !== "" && text.indexOf("\u0000") < 0 && unescape(encodeURIComponent(text)).length <= MAX_ID_BYTES;
  }

  // The tab's session id, renewed after sessionTimeoutMs without events; `touch` marks activity.
  function sessionId(touch) {
    var now = Date.now(), s = null;
    try { s = JSON.parse(load("sessionStorage", SESSION)); } catch (e) { /* renewed below */ }
    if (!s || typeof s.id !== "string" || now - s.last > cfg.sessionTimeoutMs) s = { id: uuid(), last: now };
    if (touch) s.last = now;
    save("sessionStorage", SESSION, JSON.stringify(s));
    return s.id;
  }

  function merge(a, b) {
    var out = null, k;
    [a, b].forEach(function (o) {
      if (o && typeof o === "object") for (k in o) if (Object.prototype.hasOwnProperty.call(o, k)) (out = out || {})[k] = o[k];
    });
    return out;
  }

  function track(name, properties) {
    if (!cfg) return calls.push(["track", name, properties]); // before init: replayed by init
    if (typeof name !== "string" || !name) return warn("track: the event name must be a non-empty string");
    if (properties != null && (typeof properties !== "object" || Array.isArray(properties))) {
      return warn("track: properties must be an object");
    }
    enqueue(name, name === "page_view" ? "view" : "action", properties, null);
  }

  function enqueue(name, type, properties, traits) {
    var e = {
      event_id: uuid(),
      event_name: name,
      event_type: type,
      anonymous_id: anonymousId(),
      session_id: sessionId(true),
      page_url: String(w.location.href).slice(0, 2048),
      referrer: d.referrer ? d.referrer.slice(0, 2048) : null,
      event_time: new Date().toISOString()
    };
    var user = userId();
    if (user !== null) e.user_id = user;
    if (traits) e.traits = traits;
    var props = merge(cfg.properties, properties);
    if (props) e.properties = props;
    if (queue.length >= cfg.maxQueue) {
      queue.shift();
      warn("queue full: dropped the oldest event");
    }
    queue.push(e);
    if (queue.length >= cfg.batchSize) flush(false);
    else schedule(cfg.flushIntervalMs);
  }

  function schedule(ms) {
    if (!timer) timer = setTimeout(function () { timer = 0; flush(false); }, Math.max(0, ms));
  }

  function url() {
    return cfg.endpoint + "/v1/batch" + (cfg.writeKey ? "?write_key=" + encodeURIComponent(cfg.writeKey) : "");
  }

  // Takes the next batch off the queue: at most batchSize events and about MAX_CHARS of JSON.
  function take() {
    var batch = [], chars = 2;
    while (queue.length && batch.length < cfg.batchSize) {
      var n = JSON.stringify(queue[0]).length + 1;
      if (batch.length && chars + n > MAX_CHARS) break;
      chars += n;
      batch.push(queue.shift());
    }
    return batch;
  }

  function flush(unloading) {
    if (!cfg) return;
    if (unloading) {
      if (timer) { clearTimeout(timer); timer = 0; }
      // A batch in flight may die with the page: send it again (event_id makes that harmless).
      if (inflight) { queue = inflight.concat(queue); inflight = null; }
      while (queue.length) beacon(JSON.stringify(take()));
      return;
    }
    if (inflight || !queue.length) return; // one request at a time; the answer flushes on
    if (Date.now() < retryAt) return schedule(retryAt - Date.now());
    if (timer) { clearTimeout(timer); timer = 0; }
    send(take());
  }

  function beacon(body) {
    var nav = w.navigator;
    try {
      if (nav.sendBeacon && nav.sendBeacon(url(), body)) return;
    } catch (e) { /* fall back to fetch */ }
    if (w.fetch) {
      w.fetch(url(), { method: "POST", body: body, keepalive: true, credentials: "omit", mode: "cors" })
        .catch(function () { /* the page is going away: nothing left to do */ });
    }
  }

  function send(batch) {
    if (!w.fetch) return beacon(JSON.stringify(batch));
    var body = JSON.stringify(batch);
    inflight = batch;
    w.fetch(url(), {
      method: "POST", body: body, credentials: "omit", mode: "cors",
      keepalive: body.length < MAX_CHARS // survives navigation; the quota is 64 KiB
    }).then(function (res) {
      if (inflight !== batch) return; // already re-sent by a beacon
      inflight = null;
      if (res.status === 429 || res.status >= 500) return retry(batch, res.headers.get("Retry-After"));
      if (!res.ok) warn("the collector refused " + batch.length + " events: HTTP " + res.status);
      backoff = 0;
      flush(false);
    }, function () {
      if (inflight !== batch) return;
      inflight = null;
      retry(batch, null);
    });
  }

  function retry(batch, retryAfter) {
    queue = batch.concat(queue);
    var ms = retryAfter ? (/^\d+$/.test(retryAfter) ? retryAfter * 1000 : Date.parse(retryAfter) - Date.now()) : NaN;
    if (!(ms >= 0)) { // unreadable (a cross-origin header the server does not expose) or absent
      backoff = Math.min(backoff ? backoff * 2 : 1000, 60000);
      ms = backoff * (0.75 + Math.random() / 2);
    }
    retryAt = Date.now() + ms;
    if (timer) { clearTimeout(timer); timer = 0; }
    schedule(ms);
  }

  // Sets the user id for this and later events and sends an identify event linking it to the
  // anonymous id, with the traits (an object: name, email, plan…).
  function identify(id, traits) {
    if (!cfg) return calls.push(["identify", id, traits]); // before init: replayed by init
    if (!validUserId(id)) {
      return warn("identify: the user id must be a non-empty string (at most " + MAX_ID_BYTES +
        " bytes) or a safe integer");
    }
    if (traits != null && (typeof traits !== "object" || Array.isArray(traits))) {
      return warn("identify: traits must be an object");
    }
    save("localStorage", USER, JSON.stringify(id));
    enqueue("identify", "identify", null, merge(traits, null));
  }

  function init(options) {
    if (cfg) return warn("init: already initialised");
    var o = options || {};
    var from = script && script.src ? script.src.replace(/\/tracker\.js([?#].*)?$/, "") : "";
    var num = function (v, dflt) { return typeof v === "number" && v >= 0 ? v : dflt; };
    cfg = {
      endpoint: String(o.endpoint || from).replace(/\/+$/, ""),
      writeKey: o.writeKey || "",
      properties: o.properties || null,
      batchSize: Math.max(1, num(o.batchSize, 20)),
      flushIntervalMs: num(o.flushIntervalMs, 2000),
      sessionTimeoutMs: num(o.sessionTimeoutMs, 30 * 60 * 1000),
      maxQueue: Math.max(1, num(o.maxQueue, 1000))
    };
    if (o.userId != null && o.userId !== userId()) identify(o.userId);
    d.addEventListener("visibilitychange", function () {
      if (d.visibilityState === "hidden") flush(true);
    });
    w.addEventListener("pagehide", function () { flush(true); });
    if (o.autoPageView !== false) page();
    var early = calls;
    calls = [];
    early.forEach(run);
  }

  function page(properties) {
    track("page_view", merge({ title: d.title }, properties));
  }

  // Logout: forget the user, start a new anonymous visitor and session. Events already queued
  // keep the ids they were tracked with.
  function reset() {
    save("localStorage", USER, null);
    save("localStorage", ANON, uuid());
    save("sessionStorage", SESSION, null);
  }

  var api = {
    version: "2",
    init: init,
    track: track,
    page: page,
    identify: identify,
    reset: reset,
    flush: function () { flush(false); },
    userId: function () { return cfg ? userId() : null; },
    anonymousId: function () { return cfg ? anonymousId() : null; },
    sessionId: function () { return cfg ? sessionId(false) : null; },
    push: function (call) { run(call); } // the snippet's queue keeps working after load
  };

  function run(call) {
    if (!call || typeof api[call[0]] !== "function" || call[0] === "push") return warn("unknown call " + (call && call[0]));
    api[call[0]].apply(null, call.slice(1));
  }

  w.edgeAnalytics = api;
  var inits = calls.filter(function (c) { return c && c[0] === "init"; });
  calls = calls.filter(function (c) { return !c || c[0] !== "init"; });
  if (inits.length) init(inits[0][1]);
  else if (script && (script.hasAttribute("data-write-key") || script.hasAttribute("data-endpoint") ||
    script.hasAttribute("data-auto-init"))) {
    init({ endpoint: script.getAttribute("data-endpoint"), writeKey: script.getAttribute("data-write-key") });
  }
})(window, document);
