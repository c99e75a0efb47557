/* paygkit agent: the service worker keeps the app's own files, and nothing else.
   The server writes the digest of the files into CACHE, so a new app replaces the old one.
   Requests to the API (/books...) never pass through here: the book's tokens are kept
   only in the app's PIN-encrypted store, never in clear in a cache. */
"use strict";

var CACHE = "paygkit-agent-__SHELL_VERSION__";
var SHELL = [
  "/agent/",
  "/agent/app.js",
  "/agent/app.css",
  "/agent/manifest.webmanifest",
  "/agent/icon.svg"
];

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      // Past the HTTP cache: the files of this version, not an older copy.
      return cache.addAll(SHELL.map(function (url) { return new Request(url, {cache: "reload"}); }));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf("paygkit-agent-") === 0 && name !== CACHE;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  var path = url.pathname === "/agent/index.html" ? "/agent/" : url.pathname;
  if (SHELL.indexOf(path) < 0) { return; }
  event.respondWith(
    caches.open(CACHE).then(function (cache) {
      return cache.match(path).then(function (hit) {
        return hit || fetch(request);
      });
    })
  );
});
