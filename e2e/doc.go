// Package e2e holds Gatehouse's end-to-end tests: the browser client in real
// headless Chromium (cross-origin SPA, several tabs, cookie apps behind one
// origin) and the nginx reverse-proxy configuration in deploy/. They skip
// with a notice when Chromium or nginx is missing, unless
// GATEHOUSE_REQUIRE_BROWSER / GATEHOUSE_REQUIRE_NGINX is set (CI sets both).
package e2e
