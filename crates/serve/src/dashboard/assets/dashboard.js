// dualsync dashboard: the one script. Buttons call the API with the session
// cookie and reload the page; live pages refresh their figures.
"use strict";

const notice = document.getElementById("notice");

// A form with data-api POSTs its fields as JSON (after data-confirm's question, if it has one).
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!form.dataset.api) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  // Fields go as JSON; a checkbox's "true" as true.
  const fields = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, v === "true" ? true : v]));
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  notice.className = "";
  notice.textContent = "Working…";
  try {
    const init = {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(fields),
    };
    const reply = await fetch(form.dataset.api, init);
    const body = await reply.json().catch(() => ({}));
    if (!reply.ok) throw new Error(body.error ? body.error.message : reply.statusText);
    sessionStorage.setItem("notice", form.dataset.done || "Done.");
    location.reload();
  } catch (err) {
    notice.className = "bad";
    notice.textContent = "Refused: " + err.message;
    buttons.forEach((b) => (b.disabled = false));
  }
});

// What the last action did, shown after its reload.
const done = sessionStorage.getItem("notice");
if (done) {
  notice.textContent = done;
  sessionStorage.removeItem("notice");
}

// Live pages fetch themselves again and swap their main part, unless someone is typing.
const main = document.querySelector("main[data-refresh]");
if (main) {
  setInterval(async () => {
    const typing = document.activeElement && document.activeElement.closest("form");
    if (typing || document.hidden) return;
    const reply = await fetch(location.href, { credentials: "same-origin" }).catch(() => null);
    if (!reply || !reply.ok) return;
    const next = new DOMParser().parseFromString(await reply.text(), "text/html").querySelector("main");
    if (next) main.innerHTML = next.innerHTML;
  }, Number(main.dataset.refresh) * 1000);
}
