// DOM helpers: every element is built with these, and every value goes in
// as text (the page runs under Trusted Types; no HTML string reaches it).

// h builds an element: h("p", { class: "x" }, "text", child). Strings become
// text nodes; on* properties are listeners; null and false are skipped.
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

export const $main = () => document.getElementById("main");
let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

export function field(label, input, hint) {
  input.id ||= nextId("f");
  const kids = [h("label", { for: input.id }, label), input];
  if (hint) {
    const hid = nextId("hint");
    input.setAttribute("aria-describedby", hid);
    kids.push(h("div", { class: "hint", id: hid }, hint));
  }
  return h("div", { class: "field" }, kids);
}

export function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null }, text);
}

// status shows a short message in the live region at the top.
export function status(kind, text) {
  const s = document.getElementById("status");
  s.replaceChildren(text ? notice(kind, text) : "");
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function time(iso) {
  return h("time", { datetime: iso }, fmtTime(iso));
}

// busy disables a form's controls while fn runs.
export async function busy(form, fn) {
  const controls = [...form.querySelectorAll("button, input, select")];
  controls.forEach((c) => (c.disabled = true));
  try {
    return await fn();
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
}
