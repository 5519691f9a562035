// keysafe console: small progressive enhancements; every page works without this file.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

function post(url, fields, accept) {
  const body = new URLSearchParams(fields);
  body.set("csrf", csrfToken());
  return fetch(url, {
    method: "POST",
    body: body,
    credentials: "same-origin",
    headers: { "Accept": accept || "application/json" },
  });
}

// Policy editor: the server's own parser checks the text as one types.
function watchPolicy(area) {
  const live = document.getElementById("policy-live");
  const name = document.getElementById("policy-name");
  let timer = null;
  area.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(async function () {
      try {
        const reply = await post(area.dataset.validate, { name: name.value, text: area.value });
        const doc = await reply.json();
        if (doc.ok) {
          live.textContent = "Valid: " + doc.rules + " rule(s).";
          live.className = "hint ok";
        } else {
          live.textContent = (doc.line ? "Line " + doc.line + ": " : "") + doc.message;
          live.className = "hint error";
        }
      } catch (err) {
        live.textContent = "Could not check the policy now.";
      }
    }, 300);
  });
}

// "Copy": reads the value (audited, like a reveal) straight to the clipboard.
function watchCopy(button) {
  button.hidden = false;
  const status = button.parentElement.querySelector(".copied");
  button.addEventListener("click", async function () {
    try {
      const reply = await post("/ui/secret/reveal", { path: button.dataset.path });
      if (!reply.ok) throw new Error("refused");
      const doc = await reply.json();
      await navigator.clipboard.writeText(doc.value);
      status.textContent = "Copied.";
    } catch (err) {
      status.textContent = "Could not copy.";
    }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  const area = document.querySelector("textarea[data-validate]");
  if (area) watchPolicy(area);
  document.querySelectorAll("button.copy").forEach(watchCopy);
});
