// The credit page refreshes itself: every 30 s it fetches the page again and swaps each
// part marked data-live in place, so nothing flashes. Range and pager links do the same.
"use strict";
(function () {
  const every = 1000 * Number(document.body.dataset.refreshS || 30);
  let url = location.href;

  function swap(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html");
    for (const part of fresh.querySelectorAll("[data-live][id]")) {
      const here = document.getElementById(part.id);
      if (here && here.innerHTML !== part.innerHTML) {
        here.innerHTML = part.innerHTML;
        here.className = part.className;
      }
    }
    document.title = fresh.title;
    document.body.className = fresh.body.className;
  }

  async function load(target) {
    const offline = document.getElementById("offline");
    try {
      const answer = await fetch(target, { headers: { Accept: "text/html" }, cache: "no-store" });
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      swap(await answer.text());
      if (offline) offline.textContent = "";
      return true;
    } catch (err) {
      if (offline) offline.textContent = "· last refresh failed, retrying";
      return false;
    }
  }

  document.addEventListener("click", async (event) => {
    const link = event.target.closest("a[data-nav]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    url = link.href;
    if (await load(url)) history.pushState(null, "", url);
  });
  window.addEventListener("popstate", () => { url = location.href; load(url); });
  setInterval(() => load(url), every);
})();
