/* paygkit agent: sell time from a token book, with or without a network (docs/agents.md).

   What this phone keeps, in one place: localStorage "paygkit-agent-vault", a
   JSON envelope around one AES-GCM ciphertext.  Its key is derived from the
   agent's PIN with PBKDF2-SHA-256 (ITERATIONS rounds, a random salt made when
   the phone is set up), is never extractable and lives in memory only while
   the app is unlocked.  Inside: the agent's API key, their books (serials,
   counts and token digits; never a device key: the server sends none), the
   steps handed out, and the hand-outs waiting to sync.  Nothing else is
   stored: not in clear, not in IndexedDB, not in Cache Storage (the service
   worker caches the app's own files only). */
(function () {
  "use strict";

  var VAULT = "paygkit-agent-vault";
  var FORMAT = "paygkit-agent-vault-1";
  // OWASP's figure for PBKDF2-HMAC-SHA-256 (2023); under a second on a cheap phone.
  var ITERATIONS = 600000;
  // The API takes up to 100 hand-outs per sync (services/books.py MAX_SYNC_HANDOUTS).
  var CHUNK = 100;
  var RETRY_MS = 60000;
  var MIN_PIN = 6;
  // Back to the PIN after this long out of sight: a phone put down unlocked shows no token.
  var IDLE_LOCK_MS = 5 * 60000;

  var key = null;    // the AES-GCM key while unlocked
  var sealing = null;  // {salt, iterations} of the vault the key opens
  var state = null;  // the vault's content while unlocked
  var saving = Promise.resolve();
  var selling = false;
  var hiddenAt = null;
  var current = null;  // {bookId, serial} being sold
  var syncing = false;
  var timer = null;

  function $(id) { return document.getElementById(id); }

  // -- screens and messages -------------------------------------------------------

  var SCREENS = ["loading", "setup", "unlock", "home", "sell", "token"];

  function show(name) {
    SCREENS.forEach(function (screen) { $(screen).hidden = screen !== name; });
    $("lock").hidden = state === null;
  }

  function say(text) {
    var box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function problemText(body, status) {
    if (body && body.error) {
      return body.error.message + (body.error.fix ? " (" + body.error.fix + ")" : "");
    }
    return "the server answered " + status;
  }

  function showNetwork() {
    var online = navigator.onLine;
    $("net").textContent = online ? "online" : "offline";
    $("net").className = "net " + (online ? "net-on" : "net-off");
  }

  // -- the vault ----------------------------------------------------------------------

  function toBase64(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text);
  }

  function fromBase64(text) {
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function envelope() {
    var text = localStorage.getItem(VAULT);
    if (!text) { return null; }
    try {
      var stored = JSON.parse(text);
      return stored && stored.format === FORMAT ? stored : null;
    } catch (e) {
      return null;
    }
  }

  async function deriveKey(pin, salt, iterations) {
    var base = await crypto.subtle.importKey(
      "raw", new TextEncoder().encode(pin), "PBKDF2", false, ["deriveKey"]);
    return crypto.subtle.deriveKey(
      {name: "PBKDF2", hash: "SHA-256", salt: salt, iterations: iterations},
      base, {name: "AES-GCM", length: 256}, false, ["encrypt", "decrypt"]);
  }

  // The format's name is bound to the ciphertext: an envelope cannot be passed off as another.
  function aad() { return new TextEncoder().encode(FORMAT); }

  async function seal() {
    if (state === null) { return; }  // locked meanwhile: the last save holds it all
    var iv = crypto.getRandomValues(new Uint8Array(12));
    var plain = new TextEncoder().encode(JSON.stringify(state));
    var sealed = new Uint8Array(await crypto.subtle.encrypt(
      {name: "AES-GCM", iv: iv, additionalData: aad()}, key, plain));
    try {
      localStorage.setItem(VAULT, JSON.stringify({
        format: FORMAT,
        kdf: "PBKDF2-SHA-256",
        iterations: sealing.iterations,
        salt: sealing.salt,
        iv: toBase64(iv),
        data: toBase64(sealed)
      }));
    } catch (e) {
      say("This phone's storage is full: sync, then remove old books.");
      throw e;
    }
  }

  // One save at a time, each sealing the state as it is when its turn comes: a slow
  // save can never write an older state over a newer one.
  function save() {
    saving = saving.catch(function () { return null; }).then(seal);
    return saving;
  }

  async function create(pin, content) {
    var salt = crypto.getRandomValues(new Uint8Array(16));
    key = await deriveKey(pin, salt, ITERATIONS);
    sealing = {salt: toBase64(salt), iterations: ITERATIONS};
    state = content;
    await save();
  }

  async function open(pin) {
    var stored = envelope();
    if (!stored.iv || !stored.data) { return false; }
    var candidate = await deriveKey(pin, fromBase64(stored.salt), stored.iterations);
    var plain;
    try {
      plain = await crypto.subtle.decrypt(
        {name: "AES-GCM", iv: fromBase64(stored.iv), additionalData: aad()},
        candidate, fromBase64(stored.data));
    } catch (e) {
      return false;  // a wrong PIN: the tag does not verify
    }
    key = candidate;
    sealing = {salt: stored.salt, iterations: stored.iterations};
    state = JSON.parse(new TextDecoder().decode(plain));
    return true;
  }

  function lock() {
    key = null;
    sealing = null;
    state = null;
    current = null;
    if (timer !== null) { clearInterval(timer); timer = null; }
    $("unlock-pin").value = "";
    show("unlock");
  }

  // -- the API --------------------------------------------------------------------------

  async function api(method, path, apiKey, body) {
    var options = {
      method: method,
      cache: "no-store",
      credentials: "omit",
      headers: {"Authorization": "Bearer " + apiKey}
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    var response = await fetch(path, options);
    var answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    return {status: response.status, ok: response.ok, body: answer};
  }

  // The agent's open books, with their tokens; throws with the server's words when refused.
  async function fetchBooks(apiKey) {
    var listed = await api("GET", "/books?status=open", apiKey);
    if (!listed.ok) { throw new Error(problemText(listed.body, listed.status)); }
    var books = {};
    for (var i = 0; i < listed.body.books.length; i++) {
      var id = listed.body.books[i].id;
      var copy = await api("GET", "/books/" + id + "/tokens", apiKey);
      if (!copy.ok) { throw new Error(problemText(copy.body, copy.status)); }
      books[id] = {book: copy.body.book, devices: copy.body.devices.map(slim), open: true};
    }
    return books;
  }

  // What a sale needs of a device: a large book must fit in the phone's storage.
  function slim(device) {
    return {
      serial: device.serial,
      account: device.account,
      steps: device.steps.map(function (step) {
        return {
          step: step.step,
          count: step.count,
          status: step.status,
          tokens: step.tokens.map(function (t) { return {days: t.days, token: t.token}; })
        };
      })
    };
  }

  // Fresh books from the server, keeping what this phone knows better: its own hand-outs
  // (not synced yet, the server does not know them) and the steps found dead.
  function merge(fresh) {
    var old = state.books;
    Object.keys(fresh).forEach(function (id) {
      if (!old[id]) { return; }
      fresh[id].devices.forEach(function (device) {
        var before = old[id].devices.find(function (d) { return d.serial === device.serial; });
        if (!before) { return; }
        device.steps.forEach(function (step, index) {
          var mine = before.steps[index];
          if (mine && mine.count === step.count && mine.status !== "open") {
            device.steps[index] = mine;
          }
        });
      });
    });
    Object.keys(old).forEach(function (id) {
      var waiting = state.queue.some(function (q) { return String(q.bookId) === id; });
      if (!fresh[id] && waiting) {
        // Closed or expired: nothing more is handed out from it, its sync is still taken.
        old[id].open = false;
        fresh[id] = old[id];
      }
    });
    state.books = fresh;
  }

  // -- selling --------------------------------------------------------------------------

  function allDevices() {
    var found = [];
    Object.keys(state.books).forEach(function (id) {
      var entry = state.books[id];
      if (!entry.open) { return; }
      entry.devices.forEach(function (device) { found.push({bookId: id, device: device}); });
    });
    return found;
  }

  function nextStep(device) {
    // In order, one value per step; dead steps are never handed out.
    return device.steps.find(function (step) { return step.status === "open"; }) || null;
  }

  function findDevice(bookId, serial) {
    var entry = state.books[bookId];
    return entry ? entry.devices.find(function (d) { return d.serial === serial; }) : null;
  }

  function renderDevices() {
    var wanted = $("find").value.trim().toLowerCase();
    var list = $("devices");
    list.textContent = "";
    var shown = 0;
    allDevices().forEach(function (found) {
      var device = found.device;
      var account = (device.account || "").toLowerCase();
      if (wanted && device.serial.toLowerCase().indexOf(wanted) < 0 &&
          account.indexOf(wanted) < 0) { return; }
      if (shown >= 50) { return; }
      shown += 1;
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "device";
      var step = nextStep(device);
      button.textContent = device.serial + (device.account ? " · " + device.account : "") +
        (step ? "" : " · no step left");
      button.addEventListener("click", function () { startSale(found.bookId, device.serial); });
      item.appendChild(button);
      list.appendChild(item);
    });
    if (shown === 0) {
      var none = document.createElement("li");
      none.className = "muted";
      none.textContent = allDevices().length ? "No device matches." : "No open book on this phone.";
      list.appendChild(none);
    }
  }

  function renderQueue() {
    $("queue-count").textContent = String(state.queue.length);
    var list = $("queue");
    list.textContent = "";
    state.queue.forEach(function (q) {
      var item = document.createElement("li");
      item.textContent = q.item.serial + " · count " + q.item.count + " · " + q.item.days +
        " days · " + q.item.amount + " " + q.item.currency + " · " +
        q.item.handed_out_at.slice(0, 16).replace("T", " ");
      list.appendChild(item);
    });
    var problems = $("problems");
    problems.textContent = "";
    state.problems.forEach(function (p) {
      var item = document.createElement("li");
      item.textContent = "Not accepted: " + p.serial + " count " + p.count + ": " + p.reason;
      problems.appendChild(item);
    });
  }

  function home() {
    current = null;
    show("home");
    renderDevices();
    renderQueue();
  }

  function startSale(bookId, serial) {
    var device = findDevice(bookId, serial);
    current = {bookId: bookId, serial: serial};
    $("sell-serial").textContent = serial;
    $("sell-account").textContent = device.account ? "Customer " + device.account : "";
    var step = nextStep(device);
    $("sell-form").hidden = step === null;
    $("sell-none").hidden = step !== null;
    var menu = $("sell-menu");
    menu.textContent = "";
    if (step !== null) {
      $("sell-step").textContent = "Step " + step.step + " of " + device.steps.length +
        " (count " + step.count + ")";
      step.tokens.forEach(function (token, index) {
        var id = "days-" + index;
        var wrap = document.createElement("div");
        wrap.className = "choice";
        var input = document.createElement("input");
        input.type = "radio";
        input.name = "days";
        input.id = id;
        input.value = token.days;
        input.required = true;
        var label = document.createElement("label");
        label.htmlFor = id;
        label.textContent = token.days + (token.days === "1" ? " day" : " days");
        wrap.appendChild(input);
        wrap.appendChild(label);
        menu.appendChild(wrap);
      });
    } else {
      $("sell-step").textContent = "";
    }
    $("sell-amount").value = "";
    $("sell-currency").value = state.currency || "";
    $("sell-reference").value = "";
    say("");
    show("sell");
  }

  function showToken(serial, days, grouped) {
    $("token-serial").textContent = serial;
    $("token-what").textContent = days + (days === "1" ? " day" : " days");
    var box = $("token-digits");
    box.textContent = "";
    grouped.split(" ").forEach(function (group) {
      var span = document.createElement("span");
      span.className = "group";
      span.textContent = group;
      box.appendChild(span);
      box.appendChild(document.createTextNode(" "));
    });
    show("token");
  }

  async function handOut(event) {
    event.preventDefault();
    // A second tap while the first is being kept would sell the next step.
    if (selling) { return; }
    selling = true;
    try {
      await sellStep();
    } finally {
      selling = false;
    }
  }

  async function sellStep() {
    var chosen = document.querySelector("#sell-menu input:checked");
    var device = findDevice(current.bookId, current.serial);
    var step = device && nextStep(device);
    if (!chosen || !step) { say("Choose the days paid for."); return; }
    var amount = $("sell-amount").value.trim();
    var currency = $("sell-currency").value.trim().toUpperCase();
    if (!/^\d+(\.\d+)?$/.test(amount)) { say("Enter the amount received, e.g. 350."); return; }
    if (!/^[A-Z]{3}$/.test(currency)) { say("Enter the currency as 3 letters, e.g. KES."); return; }
    var token = step.tokens.find(function (t) { return t.days === chosen.value; });
    var reference = $("sell-reference").value.trim();
    var item = {
      id: crypto.randomUUID(),
      serial: device.serial,
      count: step.count,
      days: token.days,
      amount: amount,
      currency: currency,
      handed_out_at: new Date().toISOString()
    };
    if (reference) { item.reference = reference; }
    // Kept before it is shown: a token on the screen is a token handed out.  The other
    // values of the step can never work once the customer enters this one.
    var offered = step.tokens;
    step.status = "handed_out";
    step.tokens = [token];
    state.currency = currency;
    state.queue.push({bookId: current.bookId, item: item});
    try {
      await save();
    } catch (e) {
      // Not kept, so not shown: the step is still this device's next one.
      step.status = "open";
      step.tokens = offered;
      state.queue = state.queue.filter(function (q) { return q.item.id !== item.id; });
      return;
    }
    say("");
    showToken(device.serial, token.days, token.token);
    if (navigator.onLine) {
      syncNow();
    } else {
      $("sync-status").textContent = "Offline: the hand-outs are sent when the network returns.";
    }
  }

  // -- syncing --------------------------------------------------------------------------

  function markDead(bookId, deadSteps) {
    (deadSteps || []).forEach(function (entry) {
      var device = findDevice(bookId, entry.serial);
      if (!device) { return; }
      device.steps.forEach(function (step) {
        if (step.status === "open" && entry.counts.indexOf(step.count) >= 0) {
          step.status = "dead";
          step.tokens = [];
        }
      });
    });
  }

  async function syncNow() {
    if (syncing || state === null || state.queue.length === 0) { return; }
    syncing = true;
    var status = $("sync-status");
    status.textContent = "Syncing…";
    try {
      var books = [];
      state.queue.forEach(function (q) {
        if (books.indexOf(q.bookId) < 0) { books.push(q.bookId); }
      });
      for (var b = 0; b < books.length; b++) {
        var bookId = books[b];
        var chunk = state.queue.filter(function (q) { return q.bookId === bookId; }).slice(0, CHUNK);
        while (chunk.length) {
          var answer = await api("POST", "/books/" + bookId + "/sync", state.apiKey,
            {handouts: chunk.map(function (q) { return q.item; })});
          if (!answer.ok) {
            // Kept, to send again: nothing is dropped until the server acknowledged it.
            status.textContent = "Not synced: " + problemText(answer.body, answer.status);
            return;
          }
          var done = {};
          answer.body.results.forEach(function (result) {
            done[result.id] = result;
          });
          if (!chunk.some(function (q) { return done[q.item.id]; })) {
            // Never the same chunk again and again: wait for the next try.
            status.textContent = "Not synced: the server acknowledged none of them.";
            return;
          }
          state.queue = state.queue.filter(function (q) {
            var result = done[q.item.id];
            if (!result) { return true; }
            if (result.result === "refused") {
              state.problems.push({serial: q.item.serial, count: q.item.count, reason: result.reason});
            }
            return false;
          });
          markDead(bookId, answer.body.dead_steps);
          await save();
          chunk = state.queue.filter(function (q) { return q.bookId === bookId; }).slice(0, CHUNK);
        }
      }
      status.textContent = "Synced at " + new Date().toTimeString().slice(0, 5) + ".";
    } catch (e) {
      status.textContent = "No network: the hand-outs wait on this phone and are sent later.";
    } finally {
      syncing = false;
      if (state !== null) { renderQueue(); }
    }
  }

  async function refresh() {
    if (syncing) { return; }
    $("sync-status").textContent = "Getting your books…";
    try {
      var fresh = await fetchBooks(state.apiKey);
      merge(fresh);
      await save();
      $("sync-status").textContent = "Books up to date.";
    } catch (e) {
      $("sync-status").textContent = e instanceof TypeError
        ? "No network: try again when online." : "Not updated: " + e.message;
    }
    renderDevices();
    renderQueue();
  }

  function unlocked() {
    if (timer === null) {
      timer = setInterval(function () { if (navigator.onLine) { syncNow(); } }, RETRY_MS);
    }
    home();
    if (navigator.onLine) { syncNow(); }
  }

  // -- the forms ------------------------------------------------------------------------

  async function setUp(event) {
    event.preventDefault();
    var apiKey = $("setup-key").value.trim();
    var pin = $("setup-pin").value;
    if (!/^\d+$/.test(pin) || pin.length < MIN_PIN) {
      say("The PIN must be at least " + MIN_PIN + " digits."); return;
    }
    if (pin !== $("setup-pin2").value) { say("The two PINs differ."); return; }
    say("Getting your books…");
    var books;
    try {
      books = await fetchBooks(apiKey);
    } catch (e) {
      say(e instanceof TypeError ? "No network: set the phone up while online." : e.message);
      return;
    }
    await create(pin, {apiKey: apiKey, currency: "", books: books, queue: [], problems: []});
    $("setup-key").value = "";
    $("setup-pin").value = "";
    $("setup-pin2").value = "";
    say("");
    unlocked();
  }

  async function unlock(event) {
    event.preventDefault();
    var pin = $("unlock-pin").value;
    $("unlock-pin").value = "";
    if (!envelope()) { show("setup"); return; }
    say("");
    if (await open(pin)) {
      unlocked();
    } else {
      say("Wrong PIN.");
    }
  }

  function forget() {
    if (!window.confirm("Remove your books and every hand-out not synced from this phone?")) {
      return;
    }
    localStorage.removeItem(VAULT);
    key = null;
    state = null;
    say("");
    show("setup");
  }

  function start() {
    showNetwork();
    window.addEventListener("online", function () { showNetwork(); syncNow(); });
    window.addEventListener("offline", showNetwork);
    $("setup-form").addEventListener("submit", setUp);
    $("unlock-form").addEventListener("submit", unlock);
    $("find-form").addEventListener("submit", function (e) { e.preventDefault(); renderDevices(); });
    $("find").addEventListener("input", renderDevices);
    $("sell-form").addEventListener("submit", handOut);
    $("sell-back").addEventListener("click", home);
    $("token-done").addEventListener("click", home);
    $("sync").addEventListener("click", function () {
      if (state !== null && state.queue.length === 0) {
        $("sync-status").textContent = "Nothing waits to sync.";
      }
      syncNow();
    });
    $("refresh").addEventListener("click", refresh);
    $("lock").addEventListener("click", lock);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        hiddenAt = Date.now();
      } else if (hiddenAt !== null && state !== null && Date.now() - hiddenAt > IDLE_LOCK_MS) {
        lock();
      }
    });
    // The app open in another window saved the vault: this copy is stale, and saving it
    // would undo what the other did.
    window.addEventListener("storage", function (event) {
      if (event.key === VAULT && state !== null) {
        lock();
        say("The app was used in another window: unlock again here.");
      }
    });
    $("forget").addEventListener("click", forget);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/agent/sw.js", {scope: "/agent/"}).catch(function () {
        say("This browser cannot keep the app for offline use.");
      });
    }
    if (!window.crypto || !crypto.subtle) {
      say("This page needs a secure address (https) to keep your books safe.");
      return;
    }
    show(envelope() ? "unlock" : "setup");
  }

  start();
})();
