// qr.js draws a QR code as an inline SVG element built through the DOM.
// Why this way: the CSP (img-src 'self') allows no data: or blob: image and
// no inline markup, and the TOTP secret must never leave the page, so a
// server-rendered image (the secret in its URL, in every proxy's log) is out.
// The encoding is qrcode-generator (MIT, vendored unmodified beside this file).
import qrcode from "./qrcode-generator.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const QUIET = 4; // the quiet zone the QR specification asks for, in modules

// qrSVG returns an <svg role="img"> of text's QR code (error correction M,
// the smallest version that holds it). Dark modules on a white square whatever
// the colour scheme: scanners expect dark on light.
export function qrSVG(text, label) {
  const qr = qrcode(0, "M");
  // Byte mode takes each char code & 0xff: hand it UTF-8, one char a byte.
  qr.addData(String.fromCharCode(...new TextEncoder().encode(text)), "Byte");
  qr.make();
  const n = qr.getModuleCount();
  const size = n + 2 * QUIET;
  const d = [];
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d.push(`M${c + QUIET} ${r + QUIET}h1v1h-1z`);
    }
  }
  const el = (name, attrs) => {
    const e = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  const svg = el("svg", { class: "qr", viewBox: `0 0 ${size} ${size}`, role: "img", "aria-label": label, "shape-rendering": "crispEdges" });
  svg.append(el("rect", { width: size, height: size, fill: "#fff" }), el("path", { d: d.join(""), fill: "#000" }));
  return svg;
}
