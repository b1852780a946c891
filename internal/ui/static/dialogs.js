// Confirmations and the step-up prompt, on the page's one <dialog>.
import { h, field, notice, status, busy } from "./dom.js";
import { gh, APIError, explain } from "./client.js";

export function dialog(title, body, buttons) {
  const d = document.getElementById("dialog");
  return new Promise((resolve) => {
    const close = (v) => {
      resolve(v);
      d.close();
    };
    // The close event of the previous dialog arrives as a task, possibly
    // after this one opened (a confirmation followed at once by the
    // step-up prompt): a close event while the dialog is open is stale.
    d.onclose = () => d.open || resolve(undefined);
    d.replaceChildren(h("h2", { id: "dialog-title" }, title), body, h("div", { class: "actions" }, buttons(close)));
    d.showModal();
    (d.querySelector("input") || d.querySelector("button.primary") || d.querySelector("button"))?.focus();
  });
}

// confirm asks before a change; typed, when given, must be typed exactly.
export function confirmAction(title, text, label, { danger = true, typed = "" } = {}) {
  const input = typed ? h("input", { autocomplete: "off", spellcheck: "false" }) : null;
  const body = h("div", {}, h("p", {}, text), typed ? field(`Type “${typed}” to confirm`, input) : null);
  return dialog(title, body, (close) => {
    const ok = h("button", { class: danger ? "danger primary" : "primary", type: "button", onclick: () => close(true) }, label);
    if (typed) {
      ok.disabled = true;
      input.addEventListener("input", () => (ok.disabled = input.value !== typed));
      input.addEventListener("keydown", (e) => e.key === "Enter" && !ok.disabled && close(true));
    }
    return [ok, h("button", { class: "secondary", type: "button", onclick: () => close(false) }, "Cancel")];
  }).then((v) => v === true);
}

// askPassword is the step-up prompt: it re-authenticates this session and
// resolves true, or false when the person cancels.
// With two-factor sign-in on, it also asks for a code (or offers the
// passkey): those accounts' sensitive actions need both.
export function askPassword() {
  const mfa = !!gh.user?.mfa;
  const pw = h("input", { type: "password", autocomplete: "current-password", required: true });
  const code = mfa ? h("input", { autocomplete: "one-time-code", inputmode: "numeric", spellcheck: "false" }) : null;
  const err = h("div", { "aria-live": "assertive" });
  const form = h("form", {},
    h("p", {}, mfa ? "For your security, enter your password and a code from your authenticator app (or a recovery code) to continue." : "For your security, enter your password again to continue."),
    field("Password", pw), mfa ? field("Code", code) : null, err);
  return dialog("Confirm it’s you", form, (close) => {
    const run = async (proof) => {
      err.replaceChildren();
      try {
        await busy(form, () => gh.reauthenticate(proof));
        close(true);
      } catch (x) {
        err.replaceChildren(notice("error", x.code === "invalid_credentials" ? "Wrong password." : explain(x)));
        pw.focus();
      }
    };
    const submit = (e) => {
      e?.preventDefault();
      return run(mfa ? { password: pw.value, code: code.value.trim() } : pw.value);
    };
    form.addEventListener("submit", submit);
    return [
      h("button", { class: "primary", type: "button", onclick: submit }, "Confirm"),
      mfa ? h("button", { class: "secondary", type: "button", onclick: () => run({ passkey: true }) }, "Use a passkey") : null,
      h("button", { class: "secondary", type: "button", onclick: () => close(false) }, "Cancel"),
    ];
  }).then((v) => v === true);
}

// stepUp runs fn; when the server wants a recent sign-in it asks for the
// password, then runs fn again.
export async function stepUp(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.code !== "insufficient_user_authentication") throw e;
    if (!(await askPassword())) throw new APIError("cancelled");
    return fn();
  }
}

// act confirms, runs with step-up, and reports the outcome.
export async function act({ title, text, label, typed, danger, run, done }) {
  if (!(await confirmAction(title, text, label, { typed, danger }))) return false;
  try {
    await stepUp(run);
    if (done) status("ok", done);
    return true;
  } catch (e) {
    if (e.code !== "cancelled") status("error", explain(e));
    return false;
  }
}
